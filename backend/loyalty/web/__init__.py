"""The web UI: a member wallet (/wallet), a partner and admin console (/console) and an auditor's
explorer (/explorer), rendered on the server over the public API.

Every page asks the API, in-process, with the signed-in user's own key or session: the browser
gets no second set of rules, the API's authorization decides what each user sees, and whatever
the UI does a client of the API can do too."""
