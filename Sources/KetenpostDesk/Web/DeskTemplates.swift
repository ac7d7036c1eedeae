// The desk's pages as Mustache templates: `{{x}}` is escaped, `{{{x}}}` only carries HTML the
// desk built itself with `HTML.escape` (forms and opened payloads). No JavaScript anywhere.
enum DeskTemplates {
    static let layout = """
        <!doctype html>
        <html lang="{{lang}}">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} – {{appName}}</title>
        <link rel="stylesheet" href="/desk.css">
        </head>
        <body>
        <a class="skip" href="#main">{{skip}}</a>
        <header class="top">
        <p class="brand">{{appName}} <span class="partner">{{partnerName}}</span></p>
        {{#staff}}
        <nav aria-label="{{appName}}"><ul>
        {{#nav}}<li><a href="{{href}}"{{#current}} aria-current="page"{{/current}}>{{label}}</a></li>{{/nav}}
        </ul></nav>
        <form method="post" action="/signout" class="signout">
        <input type="hidden" name="_csrf" value="{{csrf}}">
        <span>{{signedInAs}} <strong>{{staffName}}</strong> ({{roleName}})</span>
        <button type="submit" class="secondary">{{signOut}}</button>
        </form>
        {{/staff}}
        <p class="lang"><a href="?lang=nl" lang="nl" hreflang="nl">Nederlands</a> · <a href="?lang=en" lang="en" \
        hreflang="en">English</a></p>
        </header>
        {{#banners}}
        <div class="banner" role="alert"><strong>{{text}}</strong> <a href="/messages/{{id}}">{{label}}</a></div>
        {{/banners}}
        <main id="main">
        {{{body}}}
        </main>
        </body>
        </html>
        """

    static let signIn = """
        <h1>{{title}}</h1>
        <p>{{intro}}</p>
        {{#error}}<div class="alert" role="alert" id="signin-error"><p>{{error}}</p><p class="code">{{codeLabel}}: \
        {{code}}</p></div>{{/error}}
        <form method="post" action="/signin" class="narrow">
        <input type="hidden" name="_csrf" value="{{csrf}}">
        <div class="field"><label for="username">{{usernameLabel}}</label>
        <input type="text" id="username" name="username" autocomplete="username" required value="{{username}}"></div>
        <div class="field"><label for="password">{{passwordLabel}}</label>
        <input type="password" id="password" name="password" autocomplete="current-password" required></div>
        <div class="field"><label for="code">{{codeFieldLabel}}</label>
        <p class="help" id="code-help">{{codeHelp}}</p>
        <input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6}" maxlength="6" \
        aria-describedby="code-help"></div>
        <button type="submit">{{submit}}</button>
        </form>
        """

    static let list = """
        <h1>{{title}}</h1>
        <form method="get" action="{{action}}" class="filters" aria-label="{{filterLabel}}">
        <div class="field"><label for="state">{{stateLabel}}</label>
        <select id="state" name="state">{{#states}}<option value="{{value}}"{{#selected}} \
        selected{{/selected}}>{{label}}</option>{{/states}}</select></div>
        <div class="field"><label for="type">{{typeLabel}}</label>
        <select id="type" name="type">{{#types}}<option value="{{value}}"{{#selected}} \
        selected{{/selected}}>{{label}}</option>{{/types}}</select></div>
        <div class="field"><label for="partner">{{partnerLabel}}</label>
        <select id="partner" name="partner">{{#partners}}<option value="{{value}}"{{#selected}} \
        selected{{/selected}}>{{label}}</option>{{/partners}}</select></div>
        <div class="field"><label for="priority">{{priorityLabel}}</label>
        <select id="priority" name="priority">{{#priorities}}<option value="{{value}}"{{#selected}} \
        selected{{/selected}}>{{label}}</option>{{/priorities}}</select></div>
        <div class="field"><label for="from">{{fromLabel}}</label><input type="date" id="from" name="from" value="{{from}}"></div>
        <div class="field"><label for="until">{{untilLabel}}</label><input type="date" id="until" name="until" value="{{until}}"></div>
        {{#showMine}}<div class="field check"><input type="checkbox" id="mine" name="mine" value="1"{{#mine}} checked{{/mine}}><label \
        for="mine">{{mineLabel}}</label></div>{{/showMine}}
        <button type="submit" class="secondary">{{filterLabel}}</button>
        </form>
        <p class="count">{{total}} {{countLabel}}</p>
        {{^rows}}<p class="empty">{{emptyLabel}}</p>{{/rows}}
        {{#hasRows}}
        <table class="worklist">
        <thead><tr><th scope="col">{{timeLabel}}</th><th scope="col">{{typeLabel}}</th><th scope="col">{{partnerLabel}}</th><th \
        scope="col">{{stateLabel}}</th><th scope="col">{{answerLabel}}</th><th scope="col">{{assignedLabel}}</th></tr></thead>
        <tbody>
        {{#rows}}
        <tr class="{{rowClass}}">
        <td>{{time}}</td>
        <td><a href="{{href}}">{{type}}</a>{{#urgent}} <span class="tag urgent">{{urgentLabel}}</span>{{/urgent}}</td>
        <td>{{partner}}</td>
        <td><span class="state {{stateClass}}">{{state}}</span>{{#overdue}} <span class="tag \
        overdue">{{overdueLabel}}</span>{{/overdue}}</td>
        <td>{{answer}}</td>
        <td>{{assigned}}</td>
        </tr>
        {{/rows}}
        </tbody>
        </table>
        {{/hasRows}}
        <nav class="pages" aria-label="pages">{{#previous}}<a href="{{previous}}">{{previousLabel}}</a>{{/previous}} {{#next}}<a \
        href="{{next}}">{{nextLabel}}</a>{{/next}}</nav>
        """

    static let choose = """
        <h1>{{title}}</h1>
        <p>{{intro}}</p>
        {{^types}}<p class="empty">{{none}}</p>{{/types}}
        <ul class="choices">
        {{#types}}
        <li><form method="post" action="/compose"><input type="hidden" name="_csrf" value="{{csrf}}"><input type="hidden" name="type" \
        value="{{value}}">
        <button type="submit">{{label}}</button> <span class="help">{{help}}</span></form></li>
        {{/types}}
        </ul>
        """

    static let draft = """
        <h1>{{title}}</h1>
        {{#answering}}<p>{{answeringLabel}} <a href="/messages/{{answering}}">{{answeringType}}</a></p>{{/answering}}
        {{#saved}}<p class="notice" role="status">{{saved}}</p>{{/saved}}
        {{#hasErrors}}
        <div class="alert" role="alert" id="errors">
        <p><strong>{{errorsLabel}}</strong></p>
        <ul>{{#errors}}<li><a href="#{{anchor}}">{{field}}</a>: {{text}}</li>{{/errors}}</ul>
        </div>
        {{/hasErrors}}
        <form method="post" action="/drafts/{{id}}" class="compose" novalidate>
        <input type="hidden" name="_csrf" value="{{csrf}}">
        <fieldset class="group"><legend>{{routingLabel}}</legend>
        <div class="field{{#toError}} has-error{{/toError}}"><label for="f-_to">{{toLabel}} <span \
        class="req">({{requiredLabel}})</span></label>
        <p class="help" id="f-_to-help">{{toHelp}}</p>
        {{#toError}}<p class="field-error" id="f-_to-error">{{toError}}</p>{{/toError}}
        <select id="f-_to" name="_to" aria-describedby="f-_to-help{{#toError}} f-_to-error{{/toError}}"{{#fixedRecipient}} \
        disabled{{/fixedRecipient}}>
        <option value="">{{noneLabel}}</option>
        {{#recipients}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/recipients}}
        </select>
        {{#fixedRecipient}}<input type="hidden" name="_to" value="{{fixedRecipient}}">{{/fixedRecipient}}
        </div>
        <div class="field"><label for="f-_priority">{{priorityLabel}}</label>
        <select id="f-_priority" name="_priority">{{#priorities}}<option value="{{value}}"{{#selected}} \
        selected{{/selected}}>{{label}}</option>{{/priorities}}</select></div>
        <div class="field{{#lifetimeError}} has-error{{/lifetimeError}}"><label for="f-_lifetimeDays">{{lifetimeLabel}}</label>
        <p class="help" id="f-_lifetimeDays-help">{{lifetimeHelp}}</p>
        {{#lifetimeError}}<p class="field-error">{{lifetimeError}}</p>{{/lifetimeError}}
        <input type="number" id="f-_lifetimeDays" name="_lifetimeDays" min="1" max="90" value="{{lifetimeDays}}" \
        aria-describedby="f-_lifetimeDays-help"></div>
        </fieldset>
        <fieldset class="group"><legend>{{statisticsLabel}}</legend>
        <div class="field{{#regionError}} has-error{{/regionError}}"><label for="f-_region">{{regionLabel}}</label>
        {{#regionError}}<p class="field-error">{{regionError}}</p>{{/regionError}}
        <input type="text" id="f-_region" name="_region" value="{{region}}" maxlength="6" pattern="GM[0-9]{4}"></div>
        <div class="field"><label for="f-_exploitationForm">{{exploitationLabel}}</label>
        <select id="f-_exploitationForm" name="_exploitationForm">{{#exploitationForms}}<option value="{{value}}"{{#selected}} \
        selected{{/selected}}>{{label}}</option>{{/exploitationForms}}</select></div>
        </fieldset>
        <fieldset class="group payload"><legend>{{contentLabel}}</legend>
        {{{form}}}
        </fieldset>
        <div class="actions">
        <button type="submit" name="_action" value="send">{{sendLabel}}</button>
        <button type="submit" name="_action" value="save" class="secondary" formnovalidate>{{saveLabel}}</button>
        </div>
        </form>
        """

    static let message = """
        <h1>{{title}}</h1>
        <p class="status {{stateClass}}" role="status"><span class="state {{stateClass}}">{{state}}</span>{{#outcome}} · \
        <strong>{{outcome}}</strong>{{/outcome}}</p>
        {{#nextStep}}<div class="alert" role="alert"><p><strong>{{nextStep}}</strong></p>{{#reason}}<p class="code">{{reasonLabel}}: \
        {{reason}}</p>{{/reason}}</div>{{/nextStep}}
        {{#refused}}<div class="alert" role="alert"><p>{{refused}}</p><p class="code">{{reasonLabel}}: {{reason}}</p></div>{{/refused}}
        <section aria-labelledby="about"><h2 id="about">{{aboutLabel}}</h2>
        <dl class="meta">
        {{#meta}}<dt>{{label}}</dt><dd>{{value}}</dd>{{/meta}}
        </dl></section>
        {{#hasTimeline}}
        <section aria-labelledby="timeline"><h2 id="timeline">{{timelineLabel}}</h2>
        <ol class="timeline">{{#timeline}}<li class="{{stepClass}}"><span class="step">{{label}}</span> <span \
        class="when">{{when}}</span></li>{{/timeline}}</ol>
        </section>
        {{/hasTimeline}}
        <div class="actions">
        {{#canAnswer}}<form method="post" action="/messages/{{id}}/answer"><input type="hidden" name="_csrf" value="{{csrf}}"><button \
        type="submit">{{answerLabel}}</button></form>{{/canAnswer}}
        {{#canEvidence}}<a class="button secondary" href="/messages/{{id}}/evidence.zip">{{evidenceLabel}}</a>{{/canEvidence}}
        </div>
        {{#canAssign}}
        <form method="post" action="/messages/{{id}}/assign" class="inline">
        <input type="hidden" name="_csrf" value="{{csrf}}">
        <label for="assignee">{{assignLabel}}</label>
        <select id="assignee" name="assignee">{{#staffOptions}}<option value="{{value}}"{{#selected}} \
        selected{{/selected}}>{{label}}</option>{{/staffOptions}}</select>
        <button type="submit" class="secondary">{{assignLabel}}</button>
        </form>
        {{/canAssign}}
        {{#hasContent}}
        <section aria-labelledby="content"><h2 id="content">{{contentLabel}}</h2>
        {{{content}}}
        </section>
        {{/hasContent}}
        {{#hasCase}}
        <section aria-labelledby="case"><h2 id="case">{{caseLabel}}</h2>
        <ul class="case">{{#case}}<li><a href="/messages/{{id}}">{{type}}</a> · {{direction}} · {{time}} · <span class="state \
        {{stateClass}}">{{state}}</span>{{#outcome}} · <strong>{{outcome}}</strong>{{/outcome}}</li>{{/case}}</ul>
        </section>
        {{/hasCase}}
        """

    static let log = """
        <h1>{{title}}</h1>
        <p class="status {{verifyClass}}" role="status">{{verification}}</p>
        <form method="get" action="/log" class="filters">
        <div class="field"><label for="staff">{{staffLabel}}</label><input type="text" id="staff" name="staff" value="{{staff}}"></div>
        <div class="field"><label for="message">{{messageLabel}}</label><input type="text" id="message" name="message" \
        value="{{message}}"></div>
        <button type="submit" class="secondary">{{filterLabel}}</button>
        <a class="button secondary" href="/log.csv?staff={{staff}}&amp;message={{message}}">{{csvLabel}}</a>
        </form>
        <table class="worklist">
        <thead><tr><th scope="col">#</th><th scope="col">{{timeLabel}}</th><th scope="col">{{staffLabel}}</th><th \
        scope="col">{{roleLabel}}</th><th scope="col">{{actionLabel}}</th><th scope="col">{{messageLabel}}</th><th \
        scope="col">{{detailLabel}}</th></tr></thead>
        <tbody>
        {{#entries}}<tr><td>{{sequence}}</td><td>{{time}}</td><td><a \
        href="/log?staff={{staff}}">{{staff}}</a></td><td>{{role}}</td><td>{{action}}</td><td>{{#message}}<a \
        href="/log?message={{message}}">{{message}}</a>{{/message}}</td><td>{{detail}}</td></tr>{{/entries}}
        </tbody>
        </table>
        """

    static let users = """
        <h1>{{title}}</h1>
        <p>{{intro}}</p>
        <table class="worklist">
        <thead><tr><th scope="col">{{usernameLabel}}</th><th scope="col">{{nameLabel}}</th><th scope="col">{{roleLabel}}</th><th \
        scope="col">{{secondFactorLabel}}</th><th scope="col">{{stateLabel}}</th></tr></thead>
        <tbody>
        {{#users}}<tr><td>{{username}}</td><td>{{name}}</td><td>{{role}}</td><td>{{secondFactor}}</td><td>{{state}}</td></tr>{{/users}}
        </tbody>
        </table>
        """

    static let error = """
        <h1>{{title}}</h1>
        <div class="alert" role="alert"><p>{{sentence}}</p><p class="code">{{codeLabel}}: {{code}}</p></div>
        <p><a href="/">{{back}}</a></p>
        """

    static let css = """
        :root { --ink: #1a1a1a; --muted: #4a4a4a; --line: #8a8a8a; --bg: #ffffff; --accent: #154273; --red: #a4000f; --red-bg: #fde8ea;
          --green: #1b5e20; --green-bg: #e6f4e7; --amber-bg: #fff4d6; --focus: #ffbf47; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 17px/1.5 system-ui, "Segoe UI", Roboto, Arial, sans-serif; color: var(--ink); background: var(--bg); }
        a { color: var(--accent); }
        a:focus, button:focus, input:focus, select:focus, textarea:focus, .button:focus { outline: 3px solid var(--focus); \
        outline-offset: 2px; }
        .skip { position: absolute; left: -9999px; } .skip:focus { left: 1rem; top: 1rem; background: #fff; padding: .5rem; z-index: 10; }
        .visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
        header.top { background: var(--accent); color: #fff; padding: .5rem 1.5rem; display: flex; flex-wrap: wrap; align-items: center; \
        gap: 1rem 2rem; }
        header.top a { color: #fff; } header.top .brand { font-weight: 700; margin: 0; } header.top .partner { font-weight: 400; opacity: \
        .95; }
        header.top nav ul { list-style: none; display: flex; gap: 1.25rem; margin: 0; padding: 0; }
        header.top nav a[aria-current] { font-weight: 700; text-decoration-thickness: 3px; }
        header.top .signout { margin-left: auto; display: flex; gap: .75rem; align-items: center; } header.top .lang { margin: 0; }
        main { padding: 1rem 1.5rem 3rem; max-width: 72rem; }
        h1 { font-size: 1.75rem; margin: .5rem 0 1rem; } h2 { font-size: 1.25rem; margin-top: 2rem; }
        .banner { background: var(--red); color: #fff; padding: .75rem 1.5rem; font-size: 1.05rem; } .banner a { color: #fff; \
        font-weight: 700; }
        .alert { border-left: 6px solid var(--red); background: var(--red-bg); padding: .5rem 1rem; margin: 1rem 0; }
        .notice { border-left: 6px solid var(--green); background: var(--green-bg); padding: .5rem 1rem; }
        .code { font-family: ui-monospace, monospace; font-size: .9rem; color: var(--muted); }
        .field { margin: 0 0 1rem; } .field label, legend { display: block; font-weight: 600; margin-bottom: .25rem; }
        .help { color: var(--muted); margin: 0 0 .25rem; font-size: .95rem; }
        .field-error { color: var(--red); font-weight: 600; margin: 0 0 .25rem; }
        .has-error input, .has-error select, .has-error textarea { border-color: var(--red); border-width: 3px; }
        input[type=text], input[type=password], input[type=date], input[type=datetime-local], input[type=number], select, textarea {
          font: inherit; padding: .4rem .5rem; border: 2px solid var(--ink); border-radius: 3px; max-width: 100%; }
        input[type=text], textarea, select { width: 32rem; } textarea { min-height: 6rem; }
        fieldset { border: 1px solid var(--line); padding: .75rem 1rem; margin: 0 0 1rem; }
        fieldset .row { border-top: 1px dashed var(--line); padding-top: .5rem; }
        button, .button { font: inherit; font-weight: 600; background: var(--accent); color: #fff; border: 2px solid var(--accent); \
        border-radius: 3px;
          padding: .45rem 1rem; cursor: pointer; text-decoration: none; display: inline-block; }
        button.secondary, .button.secondary { background: #fff; color: var(--accent); }
        .actions { display: flex; gap: 1rem; flex-wrap: wrap; margin: 1rem 0; align-items: center; }
        .req { font-weight: 400; color: var(--muted); }
        .filters { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: flex-end; background: #f3f3f3; padding: .75rem; }
        .filters .field { margin: 0; } .filters select, .filters input[type=text] { width: auto; } .check label { display: inline; }
        table.worklist { border-collapse: collapse; width: 100%; margin-top: 1rem; }
        .worklist th, .worklist td { text-align: left; padding: .45rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        .worklist tr.failure td { background: var(--red-bg); } .worklist tr.new td { font-weight: 700; }
        .state { display: inline-block; padding: .05rem .5rem; border-radius: 3px; border: 2px solid var(--ink); font-weight: 600; }
        .state.failure { background: var(--red); border-color: var(--red); color: #fff; }
        .state.done { background: var(--green-bg); border-color: var(--green); color: var(--green); }
        .state.waiting { background: var(--amber-bg); }
        .tag { font-size: .85rem; font-weight: 700; padding: 0 .4rem; border-radius: 3px; }
        .tag.urgent, .tag.overdue { background: var(--red); color: #fff; }
        p.status { font-size: 1.15rem; }
        .timeline { list-style: none; padding: 0; } .timeline li { padding: .25rem 0 .25rem 1.75rem; position: relative; }
        .timeline li::before { content: "○"; position: absolute; left: 0; font-weight: 700; }
        .timeline li.done::before { content: "✔"; color: var(--green); } .timeline li.failure::before { content: "✖"; color: var(--red); }
        .timeline li.pending { color: var(--muted); }
        dl.meta, dl.payload { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1.5rem; }
        dl dt { font-weight: 600; } dl dd { margin: 0; } dl.nested { display: grid; grid-template-columns: max-content 1fr; gap: .1rem \
        1rem; }
        .multiline { white-space: pre-wrap; }
        .choices { list-style: none; padding: 0; } .choices li { margin: .5rem 0; }
        form.inline { display: flex; gap: .75rem; align-items: center; } form.narrow input { width: 20rem; }
        .empty { color: var(--muted); font-style: italic; }
        """
}
