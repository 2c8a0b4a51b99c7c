% rebase('layout.tpl', title='Message', nav=nav, counts=counts, session=session, flash=flash)
<p><a href="{{back}}">‹ Back to the list</a></p>
<article class="detail" data-msg-id="{{row.msg_id}}" data-status="{{row.status}}">
  <h1>{{row.agent_id}} <small>{{row.role or ''}} on {{row.node_id}}</small> <span class="badge-{{row.priority}}">{{row.priority}}</span> <span class="status {{row.status}}" id="status">{{row.status}}</span>{{!' <span class="status executed" id="executed-state">executed</span>' if follow_up_id else ''}}</h1>
  % if follow_up_id:
  <p class="link-out executed" id="executed">Executed: a follow-up task went to {{row.agent_id}} — <a href="/messages/m/{{follow_up_id}}" id="follow-up-link">open the follow-up</a></p>
  % end
  % if origin_id:
  <p class="link-out origin" id="origin">Follow-up task{{' requested by ' + requested_by if requested_by else ''}}{{!' <time datetime="%s" data-relative title="%s">%s</time>' % (iso(requested_at), when(requested_at), when(requested_at)) if requested_at is not None else ''}} for
    % if origin:
    <a href="/messages/m/{{origin.msg_id}}" id="origin-link">{{origin.agent_id}}’s report: {{!preview(origin.content, None)}}</a>
    % else:
    a report no longer stored (<code>{{origin_id}}</code>)
    % end
  </p>
  % end
  <form method="post" action="/messages/actions" id="actions" class="bulk">
    <input type="hidden" name="csrf" value="{{session.csrf}}">
    <input type="hidden" name="back" value="/messages/m/{{row.msg_id}}?back={{quote(back)}}">
    <button type="submit" name="one" value="acknowledge:{{row.msg_id}}">Acknowledge</button>
    <button type="submit" name="one" value="execute:{{row.msg_id}}">Execute</button>
    % if row.status == 'archived':
    <button type="submit" name="one" value="restore:{{row.msg_id}}">Restore</button>
    % else:
    <button type="submit" name="one" value="archive:{{row.msg_id}}">Archive</button>
    % end
  </form>
  <dl class="fields">
    <dt>Time</dt><dd><time datetime="{{iso(row.timestamp)}}">{{when(row.timestamp)}}</time></dd>
    <dt>Received</dt><dd><time datetime="{{iso(row.received_at)}}">{{when(row.received_at)}}</time></dd>
    <dt>Message id</dt><dd><code>{{row.msg_id}}</code></dd>
    <dt>Task</dt><dd>{{row.task_id or '—'}}</dd>
    <dt>Sender</dt><dd>{{row.sender or '—'}}</dd>
    <dt>Recipient</dt><dd>{{row.recipient or '—'}}</dd>
  </dl>
  % if audit:
  <h2>History</h2>
  <ul class="audit" id="audit">
  % for a in audit:
    <li data-action="{{a.action}}">{{a.verb}} by <strong>{{a.user}}</strong>, <time datetime="{{iso(a.at)}}" data-relative title="{{when(a.at)}}">{{duration(max(0.0, now - a.at))}} ago</time>
    % if a.detail:
      — <a href="/messages/m/{{quote(a.detail)}}" title="{{a.detail}}">{{a.detail_label}}</a>
    % end
    </li>
  % end
  % if audit_total > len(audit):
    <li class="muted">and {{audit_total - len(audit)}} earlier</li>
  % end
  </ul>
  % end
  % if thread:
  <h2>Thread</h2>
  <ol class="thread" id="thread">
  % for p in thread:
    <li data-msg-id="{{p.msg_id}}"><a href="/messages/m/{{p.msg_id}}">{{'Follow-up' if isinstance(p.content, dict) and p.content.get('kind') == 'execute' else 'Reply'}} from {{p.sender or p.agent_id}}</a>{{' to ' + p.recipient if p.recipient else ''}}, <time datetime="{{iso(p.timestamp)}}" data-relative title="{{when(p.timestamp)}}">{{when(p.timestamp)}}</time>: {{!preview(p.content, None)}}</li>
  % end
  </ol>
  % end
  <h2>Content</h2>
  <pre class="json" id="content">{{!content_html}}</pre>
  % if files:
  <h2>Files</h2>
  <ul class="files">
  % for f in files:
    <li><a href="/messages/files/{{f.file_id}}">{{f.filename or f.file_id}}</a> <span class="muted">{{size(f.size)}} · sha256 {{f.sha256[:12]}}…</span></li>
  % end
  </ul>
  % end
</article>
