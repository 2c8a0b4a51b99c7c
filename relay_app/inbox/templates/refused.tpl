<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Refused · Commander messages</title>
<link rel="stylesheet" href="/messages/static/inbox.css"></head>
<body class="login"><main>
<h1>Not done</h1>
<p class="alert red" role="alert">{{reason}}</p>
<p><a href="/messages">Back to the inbox</a></p>
</main></body></html>
