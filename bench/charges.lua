-- wrk script: durable charges of 0.01 over HTTP, each with its own Idempotency-Key.
--   wrk ... -s bench/charges.lua http://host:port -- ACCOUNTS_FILE ADMIN_TOKEN RUN_ID
-- Each request charges a random account from ACCOUNTS_FILE (one id per line).
local accounts = {}
local headers = {}
local prefix = ""
local counter = 0
local body = '{"amount":"0.01","reference":"bench"}'

function init(args)
  for line in io.lines(args[1]) do
    accounts[#accounts + 1] = line
  end
  headers["Authorization"] = "Bearer " .. args[2]
  headers["Content-Type"] = "application/json"
  prefix = args[3] .. "-" .. tostring(math.floor(os.clock() * 1e6)) .. "-"
  math.randomseed(os.time())
end

function request()
  counter = counter + 1
  headers["Idempotency-Key"] = prefix .. counter
  local account = accounts[math.random(#accounts)]
  return wrk.format("POST", "/v1/accounts/" .. account .. "/charges", headers, body)
end
