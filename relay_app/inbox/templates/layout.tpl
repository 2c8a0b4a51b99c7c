<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} · Commander messages</title>
<link rel="stylesheet" href="/messages/static/inbox.css">
<script src="/messages/static/inbox.js" defer></script>
<script src="/messages/static/keys.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="/messages">Commander <span>messages</span></a>
  <nav aria-label="Views">
    <a href="/messages" class="{{'on' if nav == 'inbox' else ''}}">Inbox <span class="count" id="unread-count" title="unread messages">{{counts.get('unread', 0)}}</span></a>
    <a href="/messages?status=unread" class="{{'on' if nav == 'unread' else ''}}">Unread</a>
    <a href="/messages?status=acknowledged" class="{{'on' if nav == 'acknowledged' else ''}}">Acknowledged</a>
    <a href="/messages?status=archived" class="{{'on' if nav == 'archived' else ''}}">Archive <span class="muted">{{counts.get('archived', 0)}}</span></a>
    <a href="/messages?status=all" class="{{'on' if nav == 'all' else ''}}">All</a>
    <a href="/messages/nodes" class="{{'on' if nav == 'nodes' else ''}}">Nodes</a>
  </nav>
  <form method="post" action="/messages/logout" class="logout">
    <input type="hidden" name="csrf" value="{{session.csrf}}">
    <span class="user">{{session.user}}</span> <button type="submit">Log out</button>
  </form>
</header>
% if flash:
<p class="flash" role="status" id="flash">{{flash}}</p>
% end
<main>
{{!base}}
</main>
</body>
</html>
