/**
 * The word lists the verifier reads. Data only, kept apart from the rules so a reviewer can see what
 * the verifier knows, and so config can add to it (`semantic.verifier.synonyms` / `antonyms`).
 *
 * Policy for these lists: a synonym group merges words, so it can only ever turn a rejection into an
 * acceptance; a group belongs here only when swapping its words never changes what a question asks
 * in everyday or technical English. When in doubt a word stays out: a miss costs one upstream call,
 * a wrong answer costs the user.
 */

/** Words that carry no meaning of their own in a question. */
export const STOPWORDS: readonly string[] = [
  // articles, determiners, pronouns
  'a', 'an', 'the', 'this', 'that', 'these', 'those', 'some', 'any', 'each', 'every', 'all', 'such',
  'i', 'me', 'my', 'mine', 'myself', 'you', 'your', 'yours', 'yourself', 'we', 'us', 'our', 'ours',
  'he', 'him', 'his', 'she', 'her', 'hers', 'it', 'its', 'itself', 'they', 'them', 'their', 'theirs',
  'one', 'someone', 'somebody', 'something', 'anyone', 'anybody', 'anything', 'people',
  // auxiliaries and modals
  'is', 'are', 'was', 'were', 'be', 'been', 'being', 'am', 'do', 'does', 'did', 'done', 'doing',
  'have', 'has', 'had', 'having', 'can', 'could', 'will', 'would', 'shall', 'should', 'may', 'might', 'must',
  'need', 'needs', 'want', 'wants', 'able', 'allowed', 'possible', 'supposed', 'let',
  // question words (their class is compared separately)
  'what', 'which', 'who', 'whom', 'whose', 'why', 'when', 'where', 'how', 'whether',
  // conjunctions and particles with no direction
  'and', 'or', 'but', 'if', 'so', 'as', 'then', 'there', 'here', 'also', 'too', 'very', 'just', 'really',
  'actually', 'basically', 'simply', 'exactly', 'please', 'kindly', 'thanks', 'thank', 'hi', 'hello', 'hey',
  'vs', 'versus', 'between', 'about', 'at', 'through', 'during', 'like', 'usually', 'many', 'much',
  'generally', 'typically', 'anymore', 'ever', 'etc', 'e.g', 'i.e', 'ok', 'okay', 'yes',
  // question scaffolding
  'way', 'ways', 'tell', 'explain', 'describe', 'know', 'wondering', 'wonder', 'curious', 'question', 'help',
  'thing', 'things',
];

/**
 * Relational words: they are not content, but which side of them a content word stands on is
 * meaning ("string to integer" ≠ "integer to string", "5 feet in meters" ≠ "5 meters in feet").
 * Symmetric ones (and, or, vs, between) are left out on purpose: "TCP vs UDP" = "UDP vs TCP".
 */
export const CONNECTORS: readonly string[] = [
  'to', 'from', 'into', 'onto', 'than', 'with', 'in', 'on', 'over', 'under', 'before', 'after', 'by',
  'for', 'per', 'of', 'instead', 'toward', 'towards', 'above', 'below', 'against',
];

/** Words that negate what follows. */
export const NEGATIONS: readonly string[] = ['not', 'no', 'never', 'none', 'nobody', 'nothing', 'nowhere', 'neither', 'nor', 'without', 'cannot'];

/**
 * Adjectives negated by a prefix: each counts as the base word plus one negation, so "unsafe" and
 * "not safe" agree and "safe" / "unsafe" do not.
 */
export const PREFIX_NEGATIONS: Readonly<Record<string, string>> = {
  unsafe: 'safe', illegal: 'legal', impossible: 'possible', incorrect: 'correct', invalid: 'valid',
  unhealthy: 'healthy', unable: 'able', untracked: 'tracked', unused: 'used', unavailable: 'available',
  unnecessary: 'necessary', uncommon: 'common', unlikely: 'likely', unhappy: 'happy', unusual: 'usual',
  unknown: 'known', unlimited: 'limited', unsupported: 'supported', inaccurate: 'accurate', insecure: 'secure',
  inactive: 'active', incomplete: 'complete', irregular: 'regular', irrelevant: 'relevant', dishonest: 'honest',
  disagree: 'agree', dislike: 'like', unpaid: 'paid', unread: 'read', unsaved: 'saved', unstable: 'stable',
  unverified: 'verified', unsigned: 'signed', unofficial: 'official', unhealthier: 'healthy', inedible: 'edible',
  unreliable: 'reliable', unsuccessful: 'successful', unwanted: 'wanted', uncomfortable: 'comfortable',
};

/** Numbers written as words. "one" is left out: it is far more often a pronoun ("how does one …"). */
export const NUMBER_WORDS: Readonly<Record<string, number>> = {
  zero: 0, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10,
  eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18,
  nineteen: 19, twenty: 20, thirty: 30, forty: 40, fifty: 50, sixty: 60, seventy: 70, eighty: 80, ninety: 90,
  dozen: 12, hundred: 100, thousand: 1000, million: 1_000_000, billion: 1_000_000_000, trillion: 1_000_000_000_000,
  once: 1, twice: 2, thrice: 3, single: 1, double: 2, triple: 3,
};

/** Multipliers among the number words: "two hundred" is 200, not 2 and 100. */
export const NUMBER_MULTIPLIERS: ReadonlySet<string> = new Set(['hundred', 'thousand', 'million', 'billion', 'trillion', 'dozen']);

/**
 * Spellings of the same thing, mapped to one form before anything else (abbreviations, product
 * names). Keys are lower case; values may be several words.
 */
export const ALIASES: Readonly<Record<string, string>> = {
  js: 'javascript', ts: 'typescript', py: 'python', golang: 'go', k8s: 'kubernetes', postgres: 'postgresql',
  psql: 'postgresql', mongo: 'mongodb', 'node.js': 'node', nodejs: 'node', 'vue.js': 'vue', vuejs: 'vue',
  'react.js': 'react', reactjs: 'react', 'next.js': 'next', nextjs: 'next', 'c#': 'csharp', 'f#': 'fsharp',
  'c++': 'cpp', 'objective-c': 'objectivec', kb: 'kilobyte', mb: 'megabyte', gb: 'gigabyte', tb: 'terabyte',
  kbs: 'kilobyte', mbs: 'megabyte', gbs: 'gigabyte', km: 'kilometer', kms: 'kilometer', kg: 'kilogram',
  kgs: 'kilogram', lb: 'pound', lbs: 'pound', oz: 'ounce', ml: 'milliliter', cm: 'centimeter', mm: 'millimeter',
  ft: 'foot', mph: 'mile per hour', kph: 'kilometer per hour', sec: 'second', secs: 'second',
  mins: 'minute', hr: 'hour', hrs: 'hour', max: 'maximum', env: 'environment', envs: 'environment',
  var: 'variable', vars: 'variable', config: 'configure', configuration: 'configure', configs: 'configure',
  repo: 'repository', repos: 'repository', dep: 'dependency', deps: 'dependency', info: 'information',
  db: 'database', dbs: 'database', dir: 'directory', dirs: 'directory', app: 'application', apps: 'application',
  param: 'parameter', params: 'parameter', arg: 'argument', args: 'argument', func: 'function', fn: 'function',
  doc: 'document', docs: 'documentation', pic: 'picture', pics: 'picture', tv: 'television', pc: 'computer',
  fridge: 'refrigerator', 'e-mail': 'email', signin: 'login', logout: 'logout', signout: 'logout',
  signup: 'register', '%': 'percent', percentage: 'percent', usa: 'us', 'u.s': 'us',
  uk: 'united kingdom', nyc: 'new york', dict: 'dictionary', dicts: 'dictionary', str: 'string', int: 'integer',
  ints: 'integer', bool: 'boolean', regex: 'regular expression', regexp: 'regular expression', aeroplane: 'airplane',
  msg: 'message', msgs: 'message', pwd: 'password', pw: 'password', pls: 'please', plz: 'please', thx: 'thanks',
  wanna: 'want to', gonna: 'going to', whats: 'what is',
};

/**
 * Groups of interchangeable words; the first word names the group. Applied after stemming, to
 * content words only.
 */
export const SYNONYMS: readonly (readonly string[])[] = [
  ['remove', 'delete', 'erase', 'eliminate'],
  ['make', 'create'],
  ['change', 'modify', 'alter', 'edit', 'update'],
  ['fix', 'repair', 'resolve', 'solve'],
  ['start', 'begin', 'commence', 'launch'],
  ['stop', 'halt', 'cease', 'terminate', 'kill'],
  ['show', 'display'],
  ['large', 'big', 'huge'],
  ['small', 'little', 'tiny'],
  ['fast', 'quick', 'rapid', 'speedy'],
  ['symptom', 'sign'],
  ['main', 'primary', 'principal', 'chief'],
  ['merge', 'combine', 'join', 'concatenate'],
  ['get', 'obtain', 'retrieve', 'fetch', 'acquire', 'find'],
  ['use', 'utilize', 'employ'],
  ['buy', 'purchase'],
  ['car', 'automobile'],
  ['airplane', 'plane', 'aircraft', 'airliner'],
  ['problem', 'issue', 'trouble'],
  ['contact', 'reach'],
  ['reduce', 'decrease', 'lower', 'lessen', 'minimize'],
  ['increase', 'raise', 'boost'],
  ['often', 'frequently'],
  ['calm', 'soothe'],
  ['store', 'keep'],
  ['tie', 'necktie'],
  ['autumn', 'fall'],
  ['write', 'author'],
  ['salary', 'wage'],
  ['doctor', 'physician'],
  ['child', 'kid'],
  ['image', 'picture', 'photo'],
  ['movie', 'film'],
  ['phone', 'smartphone', 'cellphone'],
  ['directory', 'folder'],
  ['parameter', 'argument'],
  ['element', 'item'],
  ['check', 'verify', 'test', 'determine'],
  ['calculate', 'compute'],
  ['speak', 'talk'],
  ['high', 'tall'],
  ['enable', 'activate'],
  ['disable', 'deactivate'],
  ['mean', 'meaning'],
  ['difference', 'differ', 'different'],
  ['several', 'multiple'],
  ['cost', 'price'],
  ['error', 'mistake'],
];

/** Pairs of words whose swap reverses a question. Applied to every word, particles included. */
export const ANTONYMS: readonly (readonly [string, string])[] = [
  ['maximum', 'minimum'], ['increase', 'decrease'], ['increase', 'reduce'], ['high', 'low'], ['high', 'reduce'],
  ['soft', 'hard'], ['large', 'small'], ['long', 'short'], ['hot', 'cold'], ['warm', 'cool'], ['fast', 'slow'],
  ['early', 'late'], ['old', 'new'], ['young', 'old'], ['good', 'bad'], ['advantage', 'disadvantage'],
  ['pro', 'con'], ['benefit', 'drawback'], ['benefit', 'risk'], ['upload', 'download'], ['import', 'export'],
  ['encrypt', 'decrypt'], ['encode', 'decode'], ['compress', 'decompress'], ['zip', 'unzip'], ['enable', 'disable'],
  ['lock', 'unlock'], ['login', 'logout'], ['push', 'pull'], ['buy', 'sell'], ['win', 'lose'], ['gain', 'lose'],
  ['open', 'close'], ['start', 'stop'], ['start', 'end'], ['start', 'finish'], ['add', 'remove'], ['add', 'subtract'],
  ['include', 'exclude'], ['accept', 'decline'], ['accept', 'reject'], ['allow', 'deny'], ['allow', 'block'],
  ['input', 'output'], ['first', 'last'], ['before', 'after'], ['above', 'below'], ['over', 'under'],
  ['inside', 'outside'], ['in', 'out'], ['on', 'off'], ['up', 'down'], ['top', 'bottom'], ['left', 'right'],
  ['north', 'south'], ['east', 'west'], ['positive', 'negative'], ['true', 'false'], ['success', 'failure'],
  ['light', 'dark'], ['light', 'heavy'], ['wet', 'dry'], ['full', 'empty'], ['rich', 'poor'], ['cheap', 'expensive'],
  ['easy', 'hard'], ['easy', 'difficult'], ['safe', 'dangerous'], ['always', 'never'], ['more', 'less'],
  ['more', 'fewer'], ['most', 'least'], ['plus', 'minus'], ['rise', 'set'], ['sunrise', 'sunset'],
  ['ascending', 'descending'], ['asc', 'desc'], ['horizontal', 'vertical'], ['internal', 'external'],
  ['public', 'private'], ['synchronous', 'asynchronous'], ['sync', 'async'], ['client', 'server'],
  ['frontend', 'backend'], ['inbound', 'outbound'], ['incoming', 'outgoing'], ['send', 'receive'],
  ['uppercase', 'lowercase'], ['ascend', 'descend'], ['expand', 'collapse'], ['attach', 'detach'],
  ['mount', 'unmount'], ['install', 'uninstall'], ['connect', 'disconnect'], ['follow', 'unfollow'],
  ['subscribe', 'unsubscribe'], ['credit', 'debit'], ['deposit', 'withdraw'], ['borrow', 'lend'],
  ['male', 'female'], ['man', 'woman'], ['boy', 'girl'], ['day', 'night'], ['summer', 'winter'],
  ['morning', 'evening'], ['import', 'export'], ['arrive', 'depart'], ['arrival', 'departure'],
  ['love', 'hate'], ['include', 'omit'],
  ['parent', 'child'], ['undo', 'redo'], ['show', 'hide'],
  ['forward', 'backward'], ['inner', 'outer'], ['major', 'minor'], ['wide', 'narrow'], ['thick', 'thin'],
  ['strong', 'weak'], ['loud', 'quiet'], ['clean', 'dirty'], ['happy', 'sad'], ['best', 'worst'],
  ['better', 'worse'], ['raise', 'lower'], ['underweight', 'overweight'], ['overestimate', 'underestimate'],
];

/**
 * Adjectives whose -er/-est forms are folded into the base word plus a degree mark, so synonyms and
 * antonyms apply to them ("biggest" = "largest", "hotter" vs "colder") while "large" ≠ "largest".
 */
export const GRADABLE_ADJECTIVES: readonly string[] = [
  'big', 'large', 'small', 'tiny', 'fast', 'quick', 'slow', 'high', 'low', 'long', 'short', 'tall', 'hot', 'cold',
  'warm', 'cool', 'soft', 'hard', 'easy', 'cheap', 'early', 'late', 'new', 'old', 'young', 'heavy', 'light',
  'strong', 'weak', 'rich', 'poor', 'safe', 'healthy', 'busy', 'close', 'deep', 'wide', 'narrow', 'thick', 'thin',
  'sweet', 'simple', 'great', 'smart', 'dark', 'bright', 'loud', 'quiet', 'fresh', 'clean', 'dirty', 'happy', 'sad',
  'rare', 'near', 'full', 'lucky', 'wet', 'dry', 'nice', 'hungry', 'spicy', 'crispy', 'rapid', 'little',
];

/** Comparatives and superlatives that no rule derives. */
export const IRREGULAR_DEGREES: Readonly<Record<string, readonly [string, 'cmp' | 'sup']>> = {
  better: ['good', 'cmp'], best: ['good', 'sup'], worse: ['bad', 'cmp'], worst: ['bad', 'sup'],
  farther: ['far', 'cmp'], farthest: ['far', 'sup'], further: ['far', 'cmp'], furthest: ['far', 'sup'],
  more: ['more', 'cmp'], most: ['most', 'sup'], less: ['less', 'cmp'], least: ['least', 'sup'],
};

/** Irregular plurals and verb forms the suffix stemmer cannot reach. */
export const IRREGULAR_FORMS: Readonly<Record<string, string>> = {
  children: 'child', men: 'man', women: 'woman', feet: 'foot', teeth: 'tooth', mice: 'mouse', geese: 'goose',
  wrote: 'write', written: 'write', built: 'build', made: 'make', found: 'find', got: 'get', gotten: 'get',
  took: 'take', taken: 'take', gave: 'give', given: 'give', ran: 'run', began: 'begin', begun: 'begin',
  fell: 'fall', fallen: 'fall', sold: 'sell', bought: 'buy', won: 'win', lost: 'lose', left: 'left', went: 'go',
  gone: 'go', came: 'come', saw: 'see', seen: 'see', ate: 'eat', eaten: 'eat', drank: 'drink', drunk: 'drink',
  spoke: 'speak', spoken: 'speak', held: 'hold', kept: 'keep', slept: 'sleep', sent: 'send', spent: 'spend',
  thought: 'think', taught: 'teach', caught: 'catch', brought: 'bring', paid: 'pay', said: 'say', knew: 'know',
  known: 'know', grew: 'grow', grown: 'grow', drew: 'draw', drawn: 'draw', flew: 'fly', flown: 'fly',
  chose: 'choose', chosen: 'choose', froze: 'freeze', frozen: 'freeze', broke: 'break', broken: 'break',
  quickly: 'quick', rapidly: 'rapid', slowly: 'slow', safely: 'safe', easily: 'easy', frequently: 'frequently',
  died: 'die', dead: 'die', dying: 'die', lying: 'lie', tying: 'tie', data: 'data', media: 'media',
  // Mostly the verb in questions ("lower my blood pressure"), so it joins 'reduce' rather than being
  // read as the comparative of 'low'.
  lower: 'lower',
};

/** Question words and the kind of answer they ask for. */
export const QUESTION_CLASSES: Readonly<Record<string, string>> = {
  why: 'why', when: 'when', where: 'where', who: 'who', whom: 'who', whose: 'who',
};

/** After "how", these ask for an amount rather than a manner. */
export const HOW_QUANTITY: ReadonlySet<string> = new Set([
  'many', 'much', 'long', 'often', 'frequently', 'far', 'old', 'big', 'large', 'tall', 'fast', 'high', 'deep',
  'heavy', 'soon', 'hot', 'cold', 'wide', 'expensive', 'early', 'late', 'small', 'quickly',
]);
