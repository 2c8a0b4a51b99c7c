% rebase('layout.tpl', title='Nodes', nav=nav, counts=counts, session=session, flash=flash)
<script type="application/json" id="inbox-state">{{!state_json}}</script>
<section class="alerts" id="alerts" aria-live="polite">
% include('alerts.tpl', alerts=alerts)
</section>
<h1>Nodes</h1>
<div class="nodes" id="node-panel">
% include('nodes.tpl', nodes=nodes, sparks=sparks)
</div>
