"""`handoff ledger serve`: the ledger's web console (docs/console.md).

Server-rendered HTML over the ledger's database, readable without JavaScript; every page but
`/login` and `/healthz` needs a login. The modules: `app` puts the routes and middleware
together; `pages` answers the fleet, device, staff, who and audit pages, `exception_pages` the
exceptions queue, `find_pages` the search box and staff index, `admin` the accounts page;
`forms` checks posted forms, `listing` pages long tables, `find` and `exception_types` hold
their questions and names; `logins` keeps passwords, sessions and the login rate limit,
`headers` sets the security headers, `text` writes values and times into pages,
`device_custody` reads a device's custody intervals and sessions as kept at ingest, `timeline`
draws them, and `tables` turns a page's table into CSV.
"""
