% rebase('layout.tpl', title='Not found', nav=nav, counts=counts, session=session, flash=flash)
<p class="notice">There is no message with id <code>{{msg_id}}</code>.</p>
<p><a href="/messages">Back to the inbox</a></p>
