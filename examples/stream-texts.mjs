// Streams 10,000 texts to a running twinlane over /ws with the package's client and prints the rate.
//   npm start                                  # in another terminal
//   node examples/stream-texts.mjs [http://127.0.0.1:8080] [apiKey]
import { TwinlaneStream } from 'twinlane/client';

const [url = 'http://127.0.0.1:8080', apiKey] = process.argv.slice(2);
const client = await TwinlaneStream.connect({ url, apiKey });

// One request, vectors in input order (Float32Array each).
const [query] = await client.embed(['how do I stream embeddings?']);
console.log(`one vector of ${query.length} dims`);

// Any (async) iterable; at most 512 texts unanswered at once, results as they arrive.
async function* texts() {
  for (let i = 0; i < 10_000; i++) yield `product title number ${i}`;
}
const started = performance.now();
let received = 0;
for await (const result of client.stream(texts(), {
  maxInFlight: 512,
  onProgress: (p) => {
    if (p.answered % 2000 === 0) console.log(p);
  },
})) {
  if (!result.ok) console.error(`item ${result.index}: ${result.error.code}`);
  received++;
}
const seconds = (performance.now() - started) / 1000;
console.log(`${received} results in ${seconds.toFixed(2)} s: ${(received / seconds).toFixed(0)} vectors/s`);
await client.close();
