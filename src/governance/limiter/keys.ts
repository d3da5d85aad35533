/**
 * Limit keys: the names under which usage is counted, the same on every worker and every node.
 * `|` joins the parts of a combined key and `:` ends a part's kind, so both are escaped inside
 * names (as %7C and %3A, with % itself as %25): no consumer or model name can forge another's key.
 */

function escapeName(name: string): string {
  return /[%|:]/.test(name) ? name.replace(/%/g, '%25').replace(/\|/g, '%7C').replace(/:/g, '%3A') : name;
}

/** Everything one consumer does: `c:alice`. */
export function consumerKey(consumer: string): string {
  return `c:${escapeName(consumer)}`;
}

/** Everyone's use of one client-facing model: `m:gpt-4o`. */
export function modelKey(model: string): string {
  return `m:${escapeName(model)}`;
}

/** One consumer on one model: `c:alice|m:gpt-4o`. */
export function consumerModelKey(consumer: string, model: string): string {
  return `${consumerKey(consumer)}|${modelKey(model)}`;
}
