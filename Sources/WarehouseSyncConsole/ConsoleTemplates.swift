import Mustache

/// The console's pages as Mustache templates, compiled into the binary (no files to ship beside
/// it). `{{ }}` escapes HTML: every value from a letter (body, headers, error) goes through it;
/// nothing is rendered with `{{{ }}}`. The pages need no script; ids and `data-` attributes are
/// what the browser tests find elements by.
enum ConsoleTemplates {
    static func library() throws -> MustacheLibrary {
        var library = MustacheLibrary()
        for (name, text) in [
            ("head", head), ("foot", foot), ("overview", overview), ("group", group), ("letter", letter),
            ("result", result), ("login", login), ("message", message),
        ] {
            try library.register(text, named: name)
        }
        return library
    }

    static let head = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{frame.title}} · WarehouseSync dead letters</title>
        <style>
        body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em 2em;color:#1b1f23}
        header{display:flex;gap:1em;align-items:baseline;border-bottom:1px solid #ccc;padding:.6em 0;margin-bottom:1em}
        header .who{margin-left:auto;color:#555}
        table{border-collapse:collapse;margin:.5em 0}td,th{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
        th{background:#f3f3f3}td.num{text-align:right}pre{background:#f6f8fa;padding:.8em;overflow:auto;max-width:100%}
        .notice{background:#e6f4ea;padding:.5em .8em}.problem{background:#fce8e6;padding:.5em .8em}
        textarea{width:100%;font:13px monospace}form.inline{display:inline}button{margin:.3em .3em .3em 0}
        .muted{color:#666}
        </style></head><body>
        {{#frame}}<header><strong><a href="/">Dead letters</a></strong><span>{{title}}</span>
        {{#person}}<span class="who">{{person}} ({{role}})
        <form class="inline" method="post" action="/logout"><button id="logout" type="submit">Log out</button></form></span>{{/person}}
        </header>
        {{#notice}}<p class="notice" id="notice">{{notice}}</p>{{/notice}}
        {{#problem}}<p class="problem" id="problem">{{problem}}</p>{{/problem}}{{/frame}}
        """

    static let foot = """
        </body></html>
        """

    static let overview = """
        {{>head}}
        <p>{{pending}} pending letter(s){{#truncated}}; the groups below cover the oldest {{pending}} only{{/truncated}}.
        Replayed and purged letters are not shown; <code>whsync dlq list --status replayed</code> lists them.</p>
        {{#hasGroups}}
        <table id="groups"><thead><tr><th>stream</th><th>reason</th><th>error</th><th>letters</th><th>oldest failure</th><th>newest failure</th></tr></thead><tbody>
        {{#groups}}<tr class="group" data-count="{{count}}" data-reason="{{reason}}"><td>{{stream}}</td><td>{{reason}}</td>
        <td><a class="group-link" href="{{path}}">{{error}}</a></td><td class="num">{{count}}</td><td>{{oldestAge}} ago</td><td>{{newestAge}} ago</td></tr>
        {{/groups}}</tbody></table>
        {{/hasGroups}}
        {{^hasGroups}}<p id="no-letters">No pending dead letters.</p>{{/hasGroups}}
        {{>foot}}
        """

    static let group = """
        {{>head}}
        <p><a href="/">All groups</a> · <strong>{{stream}}</strong> · <strong>{{reason}}</strong></p>
        <p>Error: <code id="group-error">{{error}}</code></p>
        {{^empty}}
        <p>{{shown}} pending letter(s) shown{{#truncated}} (the oldest of a larger group: replay these, then reload for the next){{/truncated}}.</p>
        {{#frame.canWrite}}
        <div id="actions">
        {{#first}}<form class="inline" method="post" action="/replay">
        <input type="hidden" name="form-token" value="{{frame.formToken}}"><input type="hidden" name="return" value="{{path}}">
        <input type="hidden" name="pending-only" value="1"><input type="hidden" name="id" value="{{id}}">
        <button id="replay-first" type="submit">Replay the first one (#{{id}})</button></form>{{/first}}
        <form class="inline" method="post" action="/replay" id="replay-shown-form">
        <input type="hidden" name="form-token" value="{{frame.formToken}}"><input type="hidden" name="return" value="{{path}}">
        <input type="hidden" name="pending-only" value="1">
        {{#shownIds}}<input type="hidden" name="id" value="{{id}}">{{/shownIds}}
        <button id="replay-shown" type="submit">Replay these {{shown}} letter(s)</button></form>
        <p class="muted">Replays exactly the letters listed here, not letters that join the group later.
        Replay the first one, check that it posts (it does not come back), then replay the rest.</p>
        </div>
        {{/frame.canWrite}}
        <table id="letters"><thead><tr><th>id</th><th>eventId</th><th>key</th><th>routing key</th><th>last failed</th><th>failures</th><th>replays</th></tr></thead><tbody>
        {{#letters}}<tr class="letter" data-id="{{id}}"><td><a href="/letters/{{id}}">{{id}}</a></td><td>{{eventId}}</td><td>{{key}}</td>
        <td>{{routingKey}}</td><td>{{lastFailed}} ({{age}} ago)</td><td class="num">{{failures}}</td><td class="num">{{replays}}{{#edited}} · edited{{/edited}}</td></tr>
        {{/letters}}</tbody></table>
        {{/empty}}
        {{#empty}}<p id="no-letters">No pending letters in this group.</p>{{/empty}}
        {{>foot}}
        """

    static let letter = """
        {{>head}}
        <p><a href="/">All groups</a> · <a id="group-link" href="{{groupPath}}">its group</a></p>
        <table id="fields"><tbody>
        {{#fields}}<tr><th>{{name}}</th><td data-field="{{name}}">{{value}}</td></tr>{{/fields}}
        </tbody></table>
        {{#frame.canWrite}}
        {{#replayable}}<form method="post" action="/replay">
        <input type="hidden" name="form-token" value="{{frame.formToken}}"><input type="hidden" name="return" value="{{path}}">
        <input type="hidden" name="id" value="{{id}}"><button id="replay-letter" type="submit">Replay this letter</button></form>{{/replayable}}
        {{/frame.canWrite}}
        {{#refusal}}<p class="muted">Not replayable: {{refusal}}</p>{{/refusal}}
        <h2>Headers</h2>
        {{#hasHeaders}}<table id="headers"><tbody>{{#headers}}<tr><th>{{name}}</th><td>{{value}}</td></tr>{{/headers}}</tbody></table>{{/hasHeaders}}
        {{^hasHeaders}}<p class="muted" id="headers">None beyond the failure's own (shown above).</p>{{/hasHeaders}}
        <h2>History</h2>
        <table id="history"><thead><tr><th>when</th><th>what</th><th>who</th><th>detail</th></tr></thead><tbody>
        {{#history}}<tr class="history"><td>{{at}}</td><td>{{what}}</td><td>{{actor}}</td><td>{{detail}}</td></tr>{{/history}}
        </tbody></table>
        <h2>Body{{#bodyIsBase64}} (not UTF-8: base64){{/bodyIsBase64}}</h2>
        <pre id="body">{{body}}</pre>
        {{#frame.canWrite}}{{^bodyIsBase64}}
        <h2>Edit the body</h2>
        <form method="post" action="/letters/{{id}}/edit" id="edit-form">
        <input type="hidden" name="form-token" value="{{frame.formToken}}">
        <textarea id="edit-body" name="body" rows="16">{{editText}}</textarea>
        <label><input type="checkbox" name="force" value="1"> store it even if it is not a valid event</label><br>
        <button id="save-body" type="submit">Save the body</button>
        <span class="muted">Checked as the workers check events; the old body stays in the history. Replay afterwards.</span>
        </form>
        {{/bodyIsBase64}}{{/frame.canWrite}}
        {{>foot}}
        """

    static let result = """
        {{>head}}
        <p id="summary">Replayed {{replayed}}, skipped {{skipped}}.</p>
        <table id="outcomes"><thead><tr><th>id</th><th>outcome</th><th>detail</th></tr></thead><tbody>
        {{#outcomes}}<tr class="outcome" data-id="{{id}}" data-outcome="{{outcome}}"><td><a href="/letters/{{id}}">{{id}}</a></td><td>{{outcome}}</td><td>{{detail}}</td></tr>{{/outcomes}}
        </tbody></table>
        <p><a id="back" href="{{back}}">Back</a></p>
        {{>foot}}
        """

    /// A problem or a refusal: the frame says it.
    static let message = """
        {{>head}}
        <p><a href="/">All groups</a></p>
        {{>foot}}
        """

    static let login = """
        {{>head}}
        <form method="post" action="/login" id="login-form">
        <p><label>Your name, for the audit trail<br><input id="name" name="name" required maxlength="64"></label></p>
        <p><label>Console token (read, or write to edit and replay)<br><input id="token" name="token" type="password" required autocomplete="off"></label></p>
        <button id="login" type="submit">Log in</button>
        </form>
        {{>foot}}
        """
}
