// Writes the benchmark's records, one JSON object a line, the same for every run with the same N:
//   node workload.mjs N OUT.jsonl
// Each record is about 1 KiB of JSON: id, name, email, a few scalars, a nested address, a tags
// array and a 600-character text (bio). A small linear congruential generator seeded with 20240601 picks the
// words, so the file depends on N alone.
import { createWriteStream } from 'node:fs';

const [count, out] = [Number(process.argv[2]), process.argv[3]];
if (!Number.isInteger(count) || count <= 0 || !out) {
  console.error('usage: node workload.mjs N OUT.jsonl   (N: a positive integer, the record count)');
  process.exit(2);
}

let state = 20240601;
function next(limit) {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  return (state >>> 8) % limit;
}
const words = ('amber basil cedar delta ember fjord grove harbor indigo juniper kestrel lumen ' +
  'meadow nectar orchid pebble quartz river saffron tundra umber velvet willow xenon yarrow ' +
  'zephyr anchor beacon canyon dune estuary falcon glacier heron island jasper').split(' ');
const cities = ['Lisbon', 'Porto', 'Recife', 'Curitiba', 'Madrid', 'Lyon', 'Turin', 'Ghent'];
const countries = ['PT', 'BR', 'ES', 'FR', 'IT', 'BE'];
const tagPool = ['retail', 'vip', 'standard', 'newsletter', 'beta', 'partner', 'churn-risk', 'b2b'];

function text(length) {
  let result = '';
  while (result.length < length) result += words[next(words.length)] + ' ';
  return result.slice(0, length);
}

const stream = createWriteStream(out);
for (let i = 0; i < count; i++) {
  const first = words[next(words.length)];
  const last = words[next(words.length)];
  const tags = [];
  for (let t = 0, n = 2 + next(4); t < n; t++) tags.push(tagPool[next(tagPool.length)]);
  const record = {
    id: 'c' + String(i).padStart(8, '0'),
    name: `${first[0].toUpperCase()}${first.slice(1)} ${last[0].toUpperCase()}${last.slice(1)}`,
    email: `${first}.${last}.${i}@example.com`,
    age: 18 + next(70),
    phone: `+351 9${String(next(100000000)).padStart(8, '0')}`,
    company: text(48).trim(),
    score: next(100000) / 100,
    active: next(3) !== 0,
    createdAt: new Date(Date.UTC(2024, 0, 1) + next(86400 * 365) * 1000).toISOString(),
    address: {
      street: `${100 + next(9900)} ${text(12).trim()} street`,
      city: cities[next(cities.length)],
      zip: String(next(100000)).padStart(5, '0'),
      country: countries[next(countries.length)],
      region: text(24).trim(),
    },
    tags,
    bio: text(600),
  };
  stream.write(JSON.stringify(record) + '\n');
}
stream.end();
