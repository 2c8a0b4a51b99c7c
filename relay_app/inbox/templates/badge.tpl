<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Unread messages</title>
<link rel="stylesheet" href="/messages/static/badge.css"></head>
<body class="badge-frame">
<script src="/messages/badge.js" data-target="self"></script>
</body>
</html>
