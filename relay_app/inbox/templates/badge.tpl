<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Unread messages</title></head>
<body>
<script src="/messages/badge.js" data-target="self"></script>
</body>
</html>
