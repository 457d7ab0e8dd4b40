// Lua scripts of the Redis broker. Each touches the keys of one session only ({sessionId} hash tag),
// so they run unchanged on Redis Cluster.

/** KEYS: lease, stream, seq. ARGV: node, firstSeq, maxEvents, ttlMs, channel, force, PUBLISH|SPUBLISH, frames... */
export const APPEND = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1, 0} end
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
local first = tonumber(ARGV[2])
if first ~= last + 1 and not (ARGV[6] == '1' and first > last) then return {-2, last} end
local n = #ARGV - 7
for i = 1, n do
  redis.call('XADD', KEYS[2], (first + i - 1) .. '-0', 'f', ARGV[7 + i])
end
redis.call('XTRIM', KEYS[2], 'MAXLEN', ARGV[3])
local newLast = first + n - 1
redis.call('SET', KEYS[3], newLast, 'PX', ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call(ARGV[7], ARGV[5], first .. '\\n' .. table.concat({unpack(ARGV, 8)}, '\\n'))
return {1, newLast}
`;

/** KEYS: stream, seq. ARGV: afterSeq (-1: from the oldest held), limit. Returns {-1} when trimmed, else {1, seq, frame, seq, frame...}. */
export const READ = `
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local after = tonumber(ARGV[1])
local head = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local first = last + 1
if #head > 0 then first = tonumber(string.match(head[1][1], '^(%d+)')) end
if after < 0 then after = first - 1 end
if after > last or after < first - 1 then return {-1} end
local rows = redis.call('XRANGE', KEYS[1], (after + 1) .. '-0', '+', 'COUNT', ARGV[2])
local out = {1}
for _, row in ipairs(rows) do
  out[#out + 1] = string.match(row[1], '^(%d+)')
  out[#out + 1] = row[2][2]
end
return out
`;

/** KEYS: lease. ARGV: node, ttlMs. Takes a free (or own) lease; returns the holder. */
export const ACQUIRE = `
local holder = redis.call('GET', KEYS[1])
if not holder or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ARGV[1]
end
return holder
`;

/** KEYS: lease, meta. ARGV: node, ttlMs, metaTtlMs. 1 when still ours (and extended), else 0. */
export const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
`;

/** KEYS: lease. ARGV: node. */
export const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

/** The payload that tells a session's subscribers it was deleted (event payloads start with a seq). */
export const DELETED_NOTICE = "deleted";

/** KEYS: meta, stream, seq, lease. ARGV: channel, PUBLISH|SPUBLISH. Deletes the session and tells its subscribers. */
export const DELETE = `
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call(ARGV[2], ARGV[1], '${DELETED_NOTICE}')
return 1
`;
