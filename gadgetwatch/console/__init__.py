"""`gadgetwatch console`: a web console for alerts and profiles (docs/console.md).

Agents post alerts to it through the webhook exporter; it keeps them in SQLite (`store`) and
shows them on server-rendered pages (`app`, `pages`, `chart`) built by an autoescaping HTML
layer (`html`), behind authentication, CSRF tokens and a strict Content-Security-Policy
(`security`). Profiles come from the stores the CLI reads (`profiles`); "Allow this" turns an
alert's fix suggestion into a RuntimeAlertException (`allow`); the Health page reads the
agents' metrics (`health`). A subpackage of the composition root: it may import every layer.
"""
