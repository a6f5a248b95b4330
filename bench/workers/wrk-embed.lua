-- wrk script for bench:load (bench/load.ts): every request one embedding item, text
-- (POST /v1/embeddings, one sentence, base64 answer) or image (POST /embed/image, a raw JPEG body),
-- or the two alternating ("mixed"). Unique inputs never repeat within a run: each thread walks its own
-- stripe of the sentence file, and images get a JPEG comment segment with a counter (new bytes, hence
-- a new cache key, same pixels and decoding work). Repeated inputs cycle a small set the bench warmed.
-- Settings come in the environment: WRK_LANE (text|image|mixed), WRK_UNIQUE (1|0), WRK_MODEL,
-- WRK_TEXTS (file, one sentence per line), WRK_IMAGES (file listing JPEG paths), WRK_REPEATED (set
-- size), WRK_OFFSET (first unique text of this run), WRK_SALT (tells runs apart), WRK_TEXT_PATH (where texts
-- go; /v1/embeddings unless set, as bench:e2e's echo is /echo). done() prints one JSON line that bench/lib/wrk.ts reads.

local lane = os.getenv("WRK_LANE")
local unique = os.getenv("WRK_UNIQUE") == "1"
local model = os.getenv("WRK_MODEL")
local repeated = tonumber(os.getenv("WRK_REPEATED"))
local salt = os.getenv("WRK_SALT")
local offset = tonumber(os.getenv("WRK_OFFSET"))
local text_path = os.getenv("WRK_TEXT_PATH") or "/v1/embeddings"

local function read_lines(path)
  local lines = {}
  for line in io.lines(path) do lines[#lines + 1] = line end
  return lines
end

local function read_file(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("*a")
  f:close()
  return data
end

local texts = read_lines(os.getenv("WRK_TEXTS"))
local images = {}
for _, path in ipairs(read_lines(os.getenv("WRK_IMAGES"))) do images[#images + 1] = read_file(path) end

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("id", thread_count)
  thread_count = thread_count + 1
  threads[#threads + 1] = thread
end

-- Globals, not locals: setup() sets `id` in each thread's state, and done() reads the counters
-- back with thread:get, which sees only globals.
id = 0
sent, wrapped, status_429, status_other = 0, 0, 0, 0
local stride = tonumber(os.getenv("WRK_THREADS"))

local text_headers = { ["Content-Type"] = "application/json" }
local image_headers = { ["Content-Type"] = "image/jpeg" }

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

local function text_format(text)
  local body = '{"model":' .. json_string(model) .. ',"input":' .. json_string(text) .. ',"encoding_format":"base64"}'
  return wrk.format("POST", text_path, text_headers, body)
end

local function image_format(jpeg)
  return wrk.format("POST", "/embed/image", image_headers, jpeg)
end

-- Repeated requests are formatted once: building each one anew (escaping, wrk.format) cost wrk more
-- CPU per request than the cache hits it measures cost the server.
local formatted_texts, formatted_images = {}, {}

local function text_request(n)
  if not unique then
    local k = n % repeated
    formatted_texts[k] = formatted_texts[k] or text_format(texts[k + 1])
    return formatted_texts[k]
  end
  local index = offset + n * stride + id
  local text = texts[(index % #texts) + 1]
  if index >= #texts then
    -- The file ran dry: a counter keeps the text new (counted, so the report can say so).
    wrapped = wrapped + 1
    text = text .. " (" .. salt .. "-" .. index .. ")"
  end
  return text_format(text)
end

local function image_request(n)
  if not unique then
    local k = n % repeated
    formatted_images[k] = formatted_images[k] or image_format(images[k + 1])
    return formatted_images[k]
  end
  local base = images[((n * stride + id) % #images) + 1]
  local comment = salt .. "-" .. id .. "-" .. n
  local length = #comment + 2
  -- SOI, then a COM segment (FF FE, big-endian length counting itself), then the rest.
  return image_format(base:sub(1, 2) .. "\255\254" .. string.char(math.floor(length / 256), length % 256) .. comment .. base:sub(3))
end

function request()
  local n = sent
  sent = sent + 1
  if lane == "text" or (lane == "mixed" and n % 2 == 0) then return text_request(lane == "mixed" and n / 2 or n) end
  return image_request(lane == "mixed" and (n - 1) / 2 or n)
end

-- WRK_STATUSES=0 leaves response() undefined: wrk then hands no answer to Lua (building its headers
-- and body as Lua values costs more than a cached answer costs the server), and done() reports wrk's
-- own count of non-2xx answers as statusOther instead of 429s apart.
local count_statuses = os.getenv("WRK_STATUSES") ~= "0"
if count_statuses then
  function response(status, headers, body)
    if status == 429 then
      status_429 = status_429 + 1
    elseif status ~= 200 then
      status_other = status_other + 1
    end
  end
end

local function cpu_seconds()
  local stat = read_file("/proc/self/stat")
  local rest = stat:sub(stat:find(")", 1, true) + 2)
  local fields = {}
  for field in rest:gmatch("%S+") do fields[#fields + 1] = field end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100
end

function done(summary, latency, requests)
  local n429, other, wraps, total_sent = 0, 0, 0, 0
  for _, thread in ipairs(threads) do
    n429 = n429 + thread:get("status_429")
    other = other + thread:get("status_other")
    wraps = wraps + thread:get("wrapped")
    -- Thread t used indices offset + k * stride + t for k below its own count: the next run starts past the busiest thread's.
    total_sent = math.max(total_sent, thread:get("sent") * #threads)
  end
  local e = summary.errors
  if not count_statuses then other = e.status end
  io.write(string.format(
    '{"requests":%d,"durationUs":%d,"meanUs":%.1f,"p50Us":%d,"p95Us":%d,"p99Us":%d,"maxUs":%d,' ..
      '"status429":%d,"statusOther":%d,"connectErrors":%d,"readErrors":%d,"writeErrors":%d,"timeouts":%d,' ..
      '"wrapped":%d,"sent":%d,"cpuSeconds":%.2f}\n',
    summary.requests, summary.duration, latency.mean, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, n429, other, e.connect, e.read, e.write, e.timeout, wraps, total_sent,
    cpu_seconds()))
end
