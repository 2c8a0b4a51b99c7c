% if not nodes:
<p class="muted">No node has reported its status yet.</p>
% end
% for node in nodes:
% lag_svg, rate_svg = sparks.get(node.node_id, ('', ''))
<article class="node {{node.color}}" data-node="{{node.node_id}}" data-color="{{node.color}}">
  <h3><span class="dot" aria-hidden="true"></span>{{node.node_id}} <span class="state">{{node.color}}</span></h3>
  <p class="facts">Last report <strong>{{duration(node.report_age_s)}}</strong> ago
    · last sync <time datetime="{{iso(node.last_sync_at)}}" data-relative title="{{when(node.last_sync_at)}}">{{when(node.last_sync_at)}}</time>
    · sync lag <strong>{{duration(node.lag_s) if node.lag_s is not None else '—'}}</strong></p>
  <div class="trends">
    <figure class="trend lag"><figcaption>Sync lag</figcaption>{{!lag_svg}}</figure>
    <figure class="trend rate"><figcaption>Messages / 5 min</figcaption>{{!rate_svg}}</figure>
  </div>
  % if node.reasons:
  <p class="reasons">{{'; '.join(node.reasons)}}</p>
  % end
  % if node.agents:
  <table class="agents">
    <thead><tr><th>Agent</th><th>Cache</th><th>Outbox</th><th>Failed</th><th>Refill</th></tr></thead>
    <tbody>
    % for agent in node.agents:
    <tr>
      <td class="agent" title="{{agent.agent_id}}">{{agent.agent_id}}</td>
      % if agent.limit:
      <td class="num cache"><meter min="0" max="{{agent.limit}}" value="{{agent.used or 0}}" low="{{agent.limit * 0.9}}" high="{{agent.limit * 0.98}}" optimum="0" title="{{size(agent.used)}} of {{size(agent.limit)}}"></meter> {{'%.0f' % (100 * (agent.fraction or 0))}} %</td>
      % else:
      <td class="num cache">{{size(agent.used)}}</td>
      % end
      <td class="num">{{'%d' % agent.outbox if agent.outbox is not None else '—'}}</td>
      <td class="num">{{'%d' % agent.failed if agent.failed is not None else '—'}}</td>
      <td class="refill" data-refill="{{agent.refill_state or ''}}" title="messages sent again to the relay, in all">{{'refilling' if agent.refilling else (agent.refill_state or '—')}}{{' · %d sent' % agent.refilled if agent.refilled else ''}}{{' · %d lost' % agent.unrefillable if agent.unrefillable else ''}}</td>
    </tr>
    % end
    </tbody>
  </table>
  % end
</article>
% end
