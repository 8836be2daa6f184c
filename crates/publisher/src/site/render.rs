//! The site's HTML. Every string from the store (names, summaries, tags, digests) goes
//! through [`escape`]; README HTML comes already sanitized from `markdown`. Styles and
//! the little script are inline, so a page is one object and needs no other request
//! (the search fetches `site/index.json`, and falls back to the list in the page).
//! Links are relative, so the site works under a store prefix and on any host.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use berth_core::Repository;
use berth_core::layout;

use super::IndexEntry;
use super::details::TagRow;

/// Shown before the first tag of a digest, e.g. `sha256:0123456789ab`.
const SHORT_DIGEST: usize = "sha256:".len() + 12;

const STYLE: &str = r#"
:root{color-scheme:light;--fg:#1b1f24;--muted:#4a5560;--bg:#fff;--soft:#f3f5f7;--line:#d0d7de;--accent:#0a58ca;--top:#0f2a44}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
.top{background:var(--top);padding:.75rem 1rem}
.top a{color:#fff;font-weight:700;text-decoration:none;font-size:1.1rem}
.top a:focus,.top a:hover{text-decoration:underline}
main{max-width:62rem;margin:0 auto;padding:1rem}
h1{font-size:1.75rem;line-height:1.25;margin:.75rem 0 .5rem;overflow-wrap:anywhere}
h2{font-size:1.3rem;margin:1.75rem 0 .5rem}
h3{font-size:1.1rem}
a{color:var(--accent)}
.lede{color:var(--muted);margin:0 0 1rem}
label{display:block;font-weight:600;margin-bottom:.25rem}
input[type=search]{width:100%;font:inherit;padding:.6rem .75rem;border:1px solid #68737d;border-radius:.4rem;color:var(--fg);background:var(--bg)}
.count{color:var(--muted);font-size:.9rem}
.repos{list-style:none;padding:0;margin:0;display:grid;gap:.75rem;grid-template-columns:repeat(auto-fill,minmax(17rem,1fr))}
.repos li{border:1px solid var(--line);border-radius:.5rem;padding:.75rem 1rem}
.repos a{font-weight:600;overflow-wrap:anywhere}
.summary{margin:.25rem 0}
.meta{color:var(--muted);font-size:.875rem;margin:0}
.pull{display:flex;gap:.5rem;flex-wrap:wrap}
.pull code{flex:1 1 16rem;background:var(--soft);border:1px solid var(--line);border-radius:.4rem;padding:.6rem .75rem;overflow-wrap:anywhere;font-size:.9rem}
button{font:inherit;padding:.5rem 1rem;border-radius:.4rem;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}
.table-wrap{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--soft)}
td.num{white-space:nowrap}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.readme pre{background:var(--soft);padding:.75rem;overflow-x:auto;border-radius:.4rem}
.readme img{max-width:100%}
footer{max-width:62rem;margin:2rem auto 0;padding:1rem;color:var(--muted);font-size:.875rem;border-top:1px solid var(--line)}
[hidden]{display:none!important}
@media (max-width:40rem){main{padding:.75rem}h1{font-size:1.45rem}}
"#;

/// Filters the list as the visitor types, over `site/index.json` (names and summaries);
/// without the JSON it filters over the list in the page.
const SEARCH_SCRIPT: &str = r#"
(function () {
  var q = document.getElementById('q');
  var count = document.getElementById('count');
  var none = document.getElementById('none');
  var items = Array.prototype.slice.call(document.querySelectorAll('li[data-name]'));
  var index = items.map(function (li) { return { name: li.dataset.name, summary: li.dataset.summary || '' }; });
  fetch('site/index.json').then(function (r) { return r.ok ? r.json() : null; })
    .then(function (j) { if (j && j.repositories) { index = j.repositories; filter(); } })
    .catch(function () {});
  function filter() {
    var text = q.value.trim().toLowerCase();
    var match = Object.create(null);
    index.forEach(function (r) {
      if (!text || (r.name + ' ' + (r.summary || '')).toLowerCase().indexOf(text) >= 0) match[r.name] = true;
    });
    var shown = 0;
    items.forEach(function (li) { li.hidden = !match[li.dataset.name]; if (!li.hidden) shown++; });
    document.querySelectorAll('section[data-org]').forEach(function (s) {
      s.hidden = !s.querySelector('li[data-name]:not([hidden])');
    });
    count.textContent = shown + (shown === 1 ? ' repository' : ' repositories');
    none.hidden = shown > 0;
  }
  q.form.addEventListener('submit', function (e) { e.preventDefault(); });
  q.addEventListener('input', filter);
  var initial = new URLSearchParams(location.search).get('q');
  if (initial) { q.value = initial; filter(); }
})();
"#;

/// The copy button appears only where the clipboard API does.
const COPY_SCRIPT: &str = r#"
(function () {
  document.querySelectorAll('button[data-copy]').forEach(function (b) {
    if (!navigator.clipboard) return;
    b.hidden = false;
    b.addEventListener('click', function () {
      var text = document.getElementById(b.dataset.copy).textContent;
      navigator.clipboard.writeText(text).then(function () {
        b.textContent = 'Copied';
        setTimeout(function () { b.textContent = 'Copy'; }, 1500);
      });
    });
  });
})();
"#;

/// `text` safe in HTML text and in quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, root: &str, body: &str, script: &str) -> String {
    let mut html = String::with_capacity(body.len() + STYLE.len() + 2048);
    html.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    html.push_str("<meta name=\"generator\" content=\"berth\">\n");
    let _ = writeln!(html, "<title>{}</title>", escape(title));
    html.push_str("<style>");
    html.push_str(STYLE);
    html.push_str("</style>\n</head>\n<body>\n");
    let _ = writeln!(
        html,
        "<header class=\"top\"><a href=\"{}\">berth registry</a></header>",
        escape(root)
    );
    html.push_str("<main>\n");
    html.push_str(body);
    html.push_str("</main>\n<footer>Public container images, published with berth. ");
    html.push_str("Pull them with <code>docker pull</code>.</footer>\n");
    if !script.is_empty() {
        html.push_str("<script>");
        html.push_str(script);
        html.push_str("</script>\n");
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// `2026-11-26T05:51:03Z` as `<time>` showing `2026-11-26 05:51 UTC`.
fn time(rfc3339: Option<&str>) -> String {
    match rfc3339 {
        Some(at) => {
            let shown = at.get(..16).map_or(at.to_owned(), |s| {
                format!("{} UTC", s.replacen('T', " ", 1))
            });
            format!(
                "<time datetime=\"{}\">{}</time>",
                escape(at),
                escape(&shown)
            )
        }
        None => "unknown".to_owned(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The home page: every public repository, grouped by organisation (first path
/// segment), with the search box.
pub fn home(entries: &[IndexEntry], host: &str) -> String {
    let mut groups: BTreeMap<&str, Vec<&IndexEntry>> = BTreeMap::new();
    for entry in entries {
        let org = entry.name.split('/').next().unwrap_or(&entry.name);
        groups.entry(org).or_default().push(entry);
    }
    let mut body = String::new();
    body.push_str("<h1>Container images</h1>\n");
    let _ = writeln!(
        body,
        "<p class=\"lede\">Public repositories on <code>{}</code>.</p>",
        escape(host)
    );
    body.push_str("<form role=\"search\" action=\"\" method=\"get\">\n");
    body.push_str("<label for=\"q\">Search repositories</label>\n");
    body.push_str("<input id=\"q\" name=\"q\" type=\"search\" autocomplete=\"off\" placeholder=\"Name or summary\">\n</form>\n");
    let _ = writeln!(
        body,
        "<p id=\"count\" class=\"count\" aria-live=\"polite\">{}</p>",
        plural(entries.len(), "repository", "repositories")
    );
    for (org, members) in &groups {
        let id = format!("org-{org}");
        let _ = writeln!(
            body,
            "<section data-org=\"{org}\" aria-labelledby=\"{id}\">\n<h2 id=\"{id}\">{org}</h2>\n<ul class=\"repos\">",
            org = escape(org),
            id = escape(&id)
        );
        for entry in members {
            let Ok(repository) = entry.name.parse::<Repository>() else {
                continue;
            };
            let _ = write!(
                body,
                "<li data-name=\"{name}\" data-summary=\"{summary}\"><a href=\"{href}\">{name}</a>",
                name = escape(&entry.name),
                summary = escape(&entry.summary),
                href = escape(&layout::site_page_path(&repository)),
            );
            if !entry.summary.is_empty() {
                let _ = write!(body, "<p class=\"summary\">{}</p>", escape(&entry.summary));
            }
            let _ = writeln!(
                body,
                "<p class=\"meta\">{} · last pushed {}</p></li>",
                plural(entry.tags, "tag", "tags"),
                time(entry.last_pushed.as_deref())
            );
        }
        body.push_str("</ul>\n</section>\n");
    }
    body.push_str("<p id=\"none\" hidden>No repository matches your search.</p>\n");
    if entries.is_empty() {
        body.push_str("<p>No public repositories yet.</p>\n");
    }
    page("Container images", "./", &body, SEARCH_SCRIPT)
}

/// One repository's page: summary, pull command, README and tags.
pub fn repository(
    repository: &Repository,
    summary: &str,
    readme_html: &str,
    rows: &[TagRow],
    host: &str,
) -> String {
    // The page lives at r/<name>/: one `../` for `r` and one per name segment.
    let root = "../".repeat(1 + repository.as_str().split('/').count());
    let mut body = String::new();
    let _ = writeln!(
        body,
        "<p><a href=\"{}\">All repositories</a></p>\n<h1>{}</h1>",
        escape(&root),
        escape(repository.as_str())
    );
    if !summary.is_empty() {
        let _ = writeln!(body, "<p class=\"lede\">{}</p>", escape(summary));
    }
    let reference = match rows.first() {
        Some(row) => format!("{host}/{repository}:{}", row.tag),
        None => format!("{host}/{repository}"),
    };
    let _ = writeln!(
        body,
        "<section aria-labelledby=\"pull\">\n<h2 id=\"pull\">Pull</h2>\n<div class=\"pull\"><code id=\"pull-command\">docker pull {}</code><button type=\"button\" data-copy=\"pull-command\" hidden>Copy</button></div>\n</section>",
        escape(&reference)
    );
    if !readme_html.is_empty() {
        body.push_str("<section class=\"readme\" aria-labelledby=\"readme\">\n<h2 id=\"readme\">README</h2>\n");
        body.push_str(readme_html);
        body.push_str("\n</section>\n");
    }
    let _ = writeln!(
        body,
        "<section aria-labelledby=\"tags\">\n<h2 id=\"tags\">Tags</h2>\n<p class=\"count\">{}, newest first.</p>",
        plural(rows.len(), "tag", "tags")
    );
    body.push_str("<div class=\"table-wrap\"><table>\n<thead><tr><th scope=\"col\">Tag</th><th scope=\"col\">Digest</th><th scope=\"col\">Platforms</th><th scope=\"col\">Size</th><th scope=\"col\">Pushed</th></tr></thead>\n<tbody>\n");
    for row in rows {
        let short = row.digest.get(..SHORT_DIGEST).unwrap_or(&row.digest);
        let platforms = if row.platforms.is_empty() {
            "unknown".to_owned()
        } else {
            row.platforms
                .iter()
                .map(|p| escape(p))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let kind = if row.is_index { " (index)" } else { "" };
        let _ = writeln!(
            body,
            "<tr><td><code>{tag}</code></td><td><code title=\"{digest}\">{short}</code></td><td>{platforms}{kind}</td><td class=\"num\">{size}</td><td class=\"num\">{pushed}</td></tr>",
            tag = escape(row.tag.as_str()),
            digest = escape(&row.digest),
            short = escape(short),
            size = escape(&indicatif::HumanBytes(row.size).to_string()),
            pushed = time(row.pushed_at.as_deref()),
        );
    }
    body.push_str("</tbody>\n</table></div>\n</section>\n");
    page(repository.as_str(), &root, &body, COPY_SCRIPT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;"
        );
    }

    #[test]
    fn summaries_are_escaped_everywhere_on_the_home_page() {
        let entries = vec![IndexEntry {
            name: "acme/web".into(),
            summary: "<img src=x onerror=alert(1)>".into(),
            last_pushed: Some("2026-11-26T05:51:03Z".into()),
            tags: 2,
        }];
        let html = home(&entries, "registry.example.com");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("href=\"r/acme/web/\""));
        assert!(html.contains("2026-11-26 05:51 UTC"));
        assert_eq!(html.matches("<h1>").count(), 1);
    }

    #[test]
    fn repository_pages_link_back_to_the_root() {
        let name: Repository = "acme/tools/web".parse().unwrap();
        let html = repository(&name, "", "", &[], "h");
        assert!(html.contains("href=\"../../../../\""), "{html}");
        assert!(html.contains("docker pull h/acme/tools/web</code>"));
    }
}
