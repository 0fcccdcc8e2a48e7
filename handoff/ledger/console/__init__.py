"""`handoff ledger serve`: the ledger's web console (docs/console.md).

Server-rendered HTML over the ledger's database, readable without JavaScript; every page but
`/login` and `/healthz` needs a login. The modules: `app` puts the routes and middleware
together, `pages` answers them, `logins` keeps accounts, sessions and the login rate limit,
`headers` sets the security headers, `timeline` draws a device's custody and sessions, and
`tables` turns a page's table into CSV.
"""
