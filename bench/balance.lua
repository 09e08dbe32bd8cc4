-- wrk script: GET /balance, each request with a random key from KEYS_FILE (one per line).
--   wrk ... -s bench/balance.lua http://host:port -- KEYS_FILE
local requests = {}

function init(args)
  for key in io.lines(args[1]) do
    requests[#requests + 1] = wrk.format("GET", "/balance", { ["Authorization"] = "AccessKey " .. key })
  end
  math.randomseed(os.time())
end

function request()
  return requests[math.random(#requests)]
end
