-- wrk script for the router's trigger endpoint: the baseline's event (trigger.lua) plus
-- the ingest key the router requires.
wrk.method = "POST"
wrk.body   = '{"id":"evt_1","event_type":"intent","name":"handover","score":0.92,"user_id":"usr_1","session_id":"sess_1","data":{"text":"agent please"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-API-Key"] = "bench-key"
