/**
 * Piscina task file for the semantic cache's index thread: the one owner of every namespace's HNSW
 * index (a native hnswlib object cannot be shared between threads). Searches, verification,
 * inserts and deletions all run here, in arrival order, off the request thread.
 *
 * `instance` is new for every thread: if the pool ever replaces this thread (a crash), the client
 * sees another instance in the next reply and feeds the new, empty index again.
 */

import { randomUUID } from 'node:crypto';
import { workerData } from 'piscina';
import { epochMs, type IndexReply, type IndexTask, type IndexWorkerData } from '../src/cache/pool-protocol.js';
import { SemanticIndexSet } from '../src/cache/semantic-index.js';
import { QuestionVerifier } from '../src/cache/verifier.js';

const data = workerData as IndexWorkerData;
const instance = randomUUID();
const v = data.verifier;
const verifier =
  v === undefined
    ? undefined
    : new QuestionVerifier({
        checks: {
          numbers: v.numbers,
          negation: v.negation,
          questionWords: v.question_words,
          entities: v.entities,
          antonyms: v.antonyms,
          substitution: v.substitution,
          order: v.order,
        },
        lexicon: { synonyms: v.synonyms, antonyms: v.antonyms_extra },
      });
const indexes = new SemanticIndexSet(data.spec, data.maxNamespaces, verifier);

export default function indexTask(task: IndexTask): IndexReply<unknown> {
  switch (task.op) {
    case 'add': {
      const labels: (number | string)[] = [];
      for (const { namespace, item } of task.items) {
        try {
          labels.push(indexes.add(namespace, task.source, item));
        } catch (err) {
          // One bad item (a mismatched vector) must not lose the rest of the batch.
          labels.push((err as Error).message);
        }
      }
      return { instance, result: labels };
    }
    case 'remove': {
      let removed = 0;
      for (const { namespace, entryKey } of task.items) if (indexes.remove(namespace, entryKey)) removed++;
      return { instance, result: removed };
    }
    case 'search':
      if (epochMs() > task.deadline) return { instance, result: { expired: true } };
      return { instance, result: indexes.search(task.namespace, task.source, task.query) };
    case 'purge':
      return { instance, result: indexes.purgeExpired(task.nowMs) };
    case 'stats':
      return { instance, result: indexes.stats() };
    case 'clear':
      indexes.clear();
      return { instance, result: true };
  }
}
