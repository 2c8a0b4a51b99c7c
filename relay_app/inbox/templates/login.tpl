<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Log in · Commander messages</title>
<link rel="stylesheet" href="/messages/static/inbox.css">
</head>
<body class="login">
<main>
<h1>Commander <span>messages</span></h1>
% if not enabled:
<p class="notice">No operator password is set, so nobody can log in. Run
<code>commander-relay hash-password</code>, put its output in a file readable by the relay
only, name that file in <code>relay.operator_password_file</code> (or put the hash in
<code>relay.operator_password_hash</code>) in relay.yaml, then restart the relay.</p>
% else:
% if error:
<p class="alert red" role="alert">{{error}}</p>
% end
<form method="post" action="/messages/login" id="login">
  <input type="hidden" name="next" value="{{next_url}}">
  <label>User <input name="user" id="user" autocomplete="username" required></label>
  <label>Password <input type="password" name="password" id="password" autocomplete="current-password" required></label>
  <button type="submit">Log in</button>
</form>
% end
</main>
</body>
</html>
