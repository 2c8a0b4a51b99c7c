% follow_up_id = executed.get(row.msg_id)
<tr class="msg {{row.status}} prio-{{row.priority}}{{' executed' if follow_up_id else ''}}" data-id="{{row.id}}" data-msg-id="{{row.msg_id}}" data-status="{{row.status}}"{{!' data-executed="1"' if follow_up_id else ''}}>
  <td class="pick"><input type="checkbox" name="msg_id" value="{{row.msg_id}}" form="actions" aria-label="Select message {{row.msg_id}}"></td>
  <td class="when"><time datetime="{{iso(row.timestamp)}}" data-relative title="{{when(row.timestamp)}}">{{when(row.timestamp)}}</time></td>
  <td class="prio"><span class="badge-{{row.priority}}">{{row.priority}}</span></td>
  <td class="who"><strong>{{row.agent_id}}</strong><small>{{row.role or '—'}} · {{row.node_id}}</small></td>
  <td class="task">{{row.task_id or ''}}</td>
  <td class="preview"><a href="/messages/m/{{row.msg_id}}?back={{back}}" class="open">{{!preview(row.content, pattern)}}</a>
    % if follow_up_id:
    <a class="state-executed" href="/messages/m/{{follow_up_id}}" title="Executed: open the follow-up task">executed ›</a>
    % end
  </td>
  <td class="acts">
    % if row.status == 'unread':
    <button type="submit" form="actions" name="one" value="acknowledge:{{row.msg_id}}" title="Acknowledge (mark read) — a">Ack</button>
    % end
    <button type="submit" form="actions" name="one" value="execute:{{row.msg_id}}" title="Execute: send a follow-up task to {{row.agent_id}} — x">Execute</button>
    % if row.status == 'archived':
    <button type="submit" form="actions" name="one" value="restore:{{row.msg_id}}" title="Move back to the inbox">Restore</button>
    % else:
    <button type="submit" form="actions" name="one" value="archive:{{row.msg_id}}" title="Archive — e">Archive</button>
    % end
  </td>
</tr>
