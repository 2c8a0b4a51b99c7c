% for alert in alerts:
<div class="alert {{alert.severity}}" role="alert" data-alert="{{alert.title}}"><strong>{{alert.title}}</strong> <span>{{alert.detail}}</span></div>
% end
