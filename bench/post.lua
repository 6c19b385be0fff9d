-- wrk script: POST /orders with a small JSON body (the demo target's create).
wrk.method = "POST"
wrk.body = '{"product_id":3,"quantity":2}'
wrk.headers["Content-Type"] = "application/json"
