/// The status page's HTML. `{{value}}` is HTML-escaped by Mustache; there is no `{{{raw}}}`.
enum StatusPageTemplate {
    static let html = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Ketenpost relay status</title>
        <style>
        body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d1d1f; background: #fafafa; }
        h1 { font-size: 1.5rem; margin: 0 0 .25rem; } h2 { font-size: 1.15rem; margin: 1.6rem 0 .5rem; }
        table { border-collapse: collapse; width: 100%; background: #fff; }
        th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e2e2e6; vertical-align: top; }
        th { background: #f0f0f4; font-weight: 600; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        .ok { color: #166534; } .warn { background: #fff7d6; } .bad { background: #fde2e2; }
        .tag { display: inline-block; padding: 0 .4rem; border-radius: .3rem; font-size: .85em; border: 1px solid #ccc; }
        .tag.revoked, .tag.expired, .tag.suspended { border-color: #b91c1c; color: #b91c1c; }
        .tag.retiring, .tag.pending { border-color: #a16207; color: #a16207; }
        .tag.active { border-color: #166534; color: #166534; }
        .alarm { padding: .6rem .8rem; background: #fde2e2; border: 1px solid #b91c1c; margin: .8rem 0; }
        code { font-size: .9em; } .muted { color: #666; }
        </style></head><body>
        <h1>Ketenpost relay <code>{{relayID}}</code></h1>
        <p class="muted">As of {{asOf}} · directory version {{directoryVersion}} · store {{store}} · certificates expiring within \
        {{warnDays}} days are highlighted</p>
        {{#staleCRL}}
        <div class="alarm" id="crl-alarm"><strong>CRL past its next update:</strong> {{staleCRLFiles}} — {{staleCRLConsequence}}</div>
        {{/staleCRL}}
        <h2>Partners</h2>
        <table id="partners"><thead><tr><th>Partner</th><th>Role</th><th>State</th><th>Certificates</th></tr></thead><tbody>
        {{#partners}}
        <tr class="{{rowClass}}" id="partner-{{id}}"><td><strong>{{id}}</strong><br><span \
        class="muted">{{name}}</span></td><td>{{role}}</td><td><span class="tag {{state}}">{{state}}</span></td><td>
        {{#certificates}}
        <div class="{{#soon}}warn{{/soon}}"><span class="tag {{state}}">{{state}}</span> <code>{{fingerprint}}</code> {{uses}} · \
        {{note}}{{#soon}} · <strong>expires soon</strong>{{/soon}}{{#refused}} <span class="tag revoked">refused: \
        {{refusal}}</span>{{/refused}}</div>
        {{/certificates}}
        </td></tr>
        {{/partners}}
        </tbody></table>
        <h2>Revocation lists per CA</h2>
        {{#hasCRLs}}
        <table id="crls"><thead><tr><th>CA</th><th>State</th><th>This update</th><th>Next update</th><th>Revoked</th>\
        <th>Source</th><th>Last fetch error</th></tr></thead><tbody>
        {{#crls}}
        <tr class="{{rowClass}}"><td>{{ca}}</td><td><span class="tag {{tag}}">{{state}}</span>{{#inEffect}} in effect{{/inEffect}}</td>\
        <td>{{thisUpdate}}</td><td>{{nextUpdate}}</td><td class="num">{{revoked}}</td><td><code>{{source}}</code></td>\
        <td>{{lastError}}</td></tr>
        {{/crls}}
        </tbody></table>
        {{/hasCRLs}}
        {{^hasCRLs}}
        <p class="muted" id="crls">No CRL: revocation is not checked.</p>
        {{/hasCRLs}}
        <h2>Rotations in progress</h2>
        {{#hasRotations}}
        <table id="rotations"><thead><tr><th>Partner</th><th>Old certificate</th><th>Keeps working until</th></tr></thead><tbody>
        {{#rotations}}
        <tr><td>{{partner}}</td><td><code>{{fingerprint}}</code></td><td>{{retiresAt}}</td></tr>
        {{/rotations}}
        </tbody></table>
        {{/hasRotations}}
        {{^hasRotations}}
        <p class="muted" id="rotations">None.</p>
        {{/hasRotations}}
        <h2>Queues</h2>
        {{#storeAnswers}}
        <table id="queues"><thead><tr><th>Recipient</th><th>Pending</th><th>Oldest waiting</th></tr></thead><tbody>
        {{#queues}}
        <tr class="{{#late}}warn{{/late}}"><td>{{recipient}}</td><td class="num">{{pending}}</td><td>{{oldest}}</td></tr>
        {{/queues}}
        </tbody></table>
        {{/storeAnswers}}
        {{^storeAnswers}}
        <p class="alarm">The store does not answer.</p>
        {{/storeAnswers}}
        <h2>Recent failures</h2>
        {{#hasFailures}}
        <table id="failures"><thead><tr><th>When</th><th>What</th><th>Message</th><th>Recipient</th>\
        <th>Sender</th><th>Detail</th></tr></thead><tbody>
        {{#failures}}
        <tr><td>{{when}}</td><td>{{what}}</td><td><code>{{message}}</code></td><td>{{recipient}}</td>\
        <td>{{sender}}</td><td>{{detail}}</td></tr>
        {{/failures}}
        </tbody></table>
        {{/hasFailures}}
        {{^hasFailures}}
        <p class="muted" id="failures">None among the latest events.</p>
        {{/hasFailures}}
        </body></html>

        """
}
