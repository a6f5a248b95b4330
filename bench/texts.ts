// Realistic 10–20 word sentences, unique per index: one phrase from each slot, chosen by the index
// in mixed radix after a bijective scramble, so neighbouring indices differ in every slot (as real
// traffic would) and no sentence repeats below SENTENCE_COUNT.
const SLOTS: readonly (readonly string[])[] = [
  ['The young doctor', "My neighbour's dog", 'A small startup', 'The city council', 'Our support team', 'An old fisherman', 'The new intern', 'A group of students', 'The head chef', 'Her younger brother', 'The football coach', 'A local artist', 'The airline', 'The museum curator', 'A delivery driver', 'The software engineer'],
  ['quietly repaired', 'bought', 'carefully painted', 'is looking for', 'wrote about', 'recommended', 'forgot', 'delivered', 'talked about', 'quickly sold', 'tried to fix', 'photographed', 'cleaned', 'ordered', 'reviewed', 'lost'],
  ['a red bicycle', 'the broken laptop', 'an expensive watch', 'the quarterly report', 'a wooden table', 'the garden fence', 'a pair of running shoes', 'the kitchen sink', 'a vintage camera', 'the project proposal', 'a bag of oranges', 'the old piano', 'a new phone case', 'the wedding cake', 'a mountain bike', 'the train tickets'],
  ['near the train station', 'in the city centre', 'at the farmers market', 'behind the old library', 'on the third floor', 'in a small village', 'by the river', 'at the airport', 'outside the stadium', 'in the hospital cafeteria', 'at the office', 'on the beach', 'in the shopping mall', 'at the university', 'next to the bakery', 'in the parking garage'],
  ['this morning', 'last weekend', 'before lunch', 'after the storm', 'on Friday evening', 'during the holidays', 'yesterday afternoon', 'two days ago', 'late at night', 'early on Sunday', 'after work', 'in the spring', 'every other week', 'before the meeting', 'last summer', 'on her birthday'],
];

export const SENTENCE_COUNT = SLOTS.reduce((n, slot) => n * slot.length, 1);
// Odd, so coprime with SENTENCE_COUNT (a power of two): index → scrambled index is a bijection.
const SCRAMBLE = 746_497;

export function sentence(index: number): string {
  let n = (((index % SENTENCE_COUNT) * SCRAMBLE) % SENTENCE_COUNT + SENTENCE_COUNT) % SENTENCE_COUNT;
  const words: string[] = [];
  for (const slot of SLOTS) {
    words.push(slot[n % slot.length]!);
    n = Math.floor(n / slot.length);
  }
  return words.join(' ') + '.';
}

/** Hands out sentences in ranges that never overlap, so phases cannot hit each other's cache entries. */
export class SentenceSource {
  #next: number;
  readonly #end: number;
  constructor(start: number, count: number) {
    if (start + count > SENTENCE_COUNT) throw new Error(`sentence range ${start}+${count} exceeds ${SENTENCE_COUNT}`);
    this.#next = start;
    this.#end = start + count;
  }
  next(): string {
    if (this.#next >= this.#end) throw new Error('sentence range exhausted; raise its size');
    return sentence(this.#next++);
  }
}
