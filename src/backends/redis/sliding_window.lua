-- One upload check for one owner, atomic on the Redis server: a sliding window log of
-- the owner's accepted uploads, timed by the server's clock so every gateway agrees.
--
-- KEYS[1]  the owner's log (a sorted set of upload times in ms)
-- ARGV[1]  uploads allowed per window
-- ARGV[2]  window in ms
-- ARGV[3]  a member unique to this check (two uploads may share a millisecond)
--
-- Returns {1, 0} when allowed (and counted), {0, retry_after_ms} when refused. A refused
-- upload is not counted, so retrying early does not push the limit out.

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0}
end

local retry = window
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  retry = tonumber(oldest[2]) + window - now
end
if retry < 1 then
  retry = 1
end
return {0, retry}
