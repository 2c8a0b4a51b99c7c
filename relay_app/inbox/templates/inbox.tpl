% rebase('layout.tpl', title='Inbox' if view.status == 'inbox' else view.status.capitalize(), nav=nav, counts=counts, session=session, flash=flash)
<script type="application/json" id="inbox-state">{{!state_json}}</script>
<section class="alerts" id="alerts" aria-live="polite">
% include('alerts.tpl', alerts=alerts)
</section>
<details class="nodes-summary" id="nodes-summary">
  <summary>Nodes: {{len([n for n in nodes if n.color == 'green'])}} green, {{len([n for n in nodes if n.color == 'yellow'])}} yellow, {{len([n for n in nodes if n.color == 'red'])}} red</summary>
  <div class="nodes" id="node-panel">
  % include('nodes.tpl', nodes=nodes, sparks=sparks)
  </div>
</details>
<form class="filters" method="get" action="/messages" id="filters" role="search">
  <input type="search" name="q" id="q" value="{{view.q}}" placeholder="Search message content" aria-label="Search message content">
  <select name="status" aria-label="Status" class="auto">
    % for v in views:
    <option value="{{v}}" {{'selected' if view.status == v else ''}}>{{view_labels[v]}}</option>
    % end
  </select>
  <select name="role" aria-label="Agent role" class="auto">
    <option value="">Any role</option>
    % for r in facets['role']:
    <option value="{{r}}" {{'selected' if view.role == r else ''}}>{{r}}</option>
    % end
  </select>
  <select name="agent" aria-label="Agent" class="auto">
    <option value="">Any agent</option>
    % for a in facets['agent_id']:
    <option value="{{a}}" {{'selected' if view.agent == a else ''}}>{{a}}</option>
    % end
  </select>
  <select name="node" aria-label="Node" class="auto">
    <option value="">Any node</option>
    % for n in facets['node_id']:
    <option value="{{n}}" {{'selected' if view.node == n else ''}}>{{n}}</option>
    % end
  </select>
  <select name="priority" aria-label="Priority" class="auto">
    <option value="">Any priority</option>
    % for p in priorities:
    <option value="{{p}}" {{'selected' if view.priority == p else ''}}>{{p}}</option>
    % end
  </select>
  <select name="range" aria-label="Time range" id="range" class="auto">
    <option value="">Any time</option>
    % for p in presets:
    <option value="{{p}}" {{'selected' if view.range == p else ''}}>Last {{p}}</option>
    % end
  </select>
  <span class="absolute">
    <label>From <input type="datetime-local" name="from" id="from" step="1" value="{{(view.params().get('from') or '').rstrip('Z')}}"></label>
    <label>to <input type="datetime-local" name="to" id="to" step="1" value="{{(view.params().get('to') or '').rstrip('Z')}}"></label>
  </span>
  <button type="submit">Apply</button>
  <a class="reset" href="/messages">Reset</a>
</form>
% if volume_svg:
<figure class="volume-strip" id="volume" title="Messages per hour over the last 24 hours">
  {{!volume_svg}}
  <figcaption class="muted">{{volume_total}} message{{'s' if volume_total != 1 else ''}} in the last 24 h, per hour</figcaption>
</figure>
% end
% for notice in notices:
<p class="notice">{{notice}}</p>
% end
<form method="post" action="/messages/actions" id="actions" class="bulk">
  <input type="hidden" name="csrf" value="{{session.csrf}}">
  <input type="hidden" name="back" value="{{view.url()}}">
  <span class="label">Selected:</span>
  <button type="submit" name="action" value="acknowledge">Acknowledge</button>
  <button type="submit" name="action" value="execute">Execute</button>
  % if view.status == 'archived':
  <button type="submit" name="action" value="restore">Restore</button>
  % else:
  <button type="submit" name="action" value="archive">Archive</button>
  % end
  <span class="summary" id="summary">{{summary}}</span>
  <label class="live" title="Show new messages as they arrive"><input type="checkbox" id="live-toggle" checked> Live</label>
  <span id="live-status" class="muted" aria-live="polite"></span>
  <button type="button" class="help-open" id="help-open" title="Keyboard shortcuts (?)">?</button>
</form>
<p class="new-banner" id="new-banner" hidden><a href="{{view.url(before=None, after=None)}}" id="new-link">New messages arrived — show the newest</a></p>
<table class="inbox" id="inbox-table">
  <thead><tr>
    <th class="pick"><input type="checkbox" id="select-all" aria-label="Select all on this page"></th>
    <th>Time</th><th>Priority</th><th>Agent</th><th>Task</th><th>Report</th><th></th>
  </tr></thead>
  <tbody id="rows">
  % for row in page.rows:
  % include('row.tpl', row=row, pattern=pattern, back=back, executed=executed)
  % end
  </tbody>
</table>
% if not page.rows:
<p class="empty" id="empty">No messages match this view.</p>
% end
<nav class="pager" aria-label="Pages">
  % if page.newer is not None:
  <a href="{{view.url(before=None, after=None)}}">« Newest</a>
  <a href="{{view.url(before=None, after=page.newer.encode())}}" rel="prev" id="newer">‹ Newer</a>
  % end
  % if page.older is not None:
  <a href="{{view.url(after=None, before=page.older.encode())}}" rel="next" id="older">Older ›</a>
  % end
</nav>
<dialog id="help" class="help" aria-label="Keyboard shortcuts">
  <h2>Keyboard shortcuts</h2>
  <dl>
    <dt><kbd>j</kbd> / <kbd>k</kbd></dt><dd>next / previous message</dd>
    <dt><kbd>o</kbd> or <kbd>Enter</kbd></dt><dd>open the message</dd>
    <dt><kbd>a</kbd></dt><dd>acknowledge</dd>
    <dt><kbd>e</kbd></dt><dd>archive</dd>
    <dt><kbd>x</kbd></dt><dd>execute (send a follow-up task)</dd>
    <dt><kbd>/</kbd></dt><dd>search</dd>
    <dt><kbd>?</kbd></dt><dd>this help; <kbd>Esc</kbd> closes it</dd>
  </dl>
  <form method="dialog"><button type="submit">Close</button></form>
</dialog>
