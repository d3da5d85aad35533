import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { stem } from '../../src/cache/stem.js';
import { isOneBlockMove, isTypoOf, QuestionVerifier, type RejectReason } from '../../src/cache/verifier.js';

const verifier = new QuestionVerifier();

function rejects(a: string, b: string, reason?: RejectReason): void {
  for (const [x, y] of [
    [a, b],
    [b, a],
  ] as const) {
    const v = verifier.verify(x, y);
    assert.equal(v.ok, false, `"${x}" vs "${y}" should be rejected`);
    if (reason !== undefined && !v.ok) assert.equal(v.reason, reason, `"${x}" vs "${y}": ${v.reason} (${v.detail})`);
  }
}

function accepts(a: string, b: string): void {
  for (const [x, y] of [
    [a, b],
    [b, a],
  ] as const) {
    const v = verifier.verify(x, y);
    assert.ok(v.ok, `"${x}" vs "${y}" should pass, got ${v.ok ? '' : `${v.reason}: ${v.detail}`}`);
  }
}

describe('verifier: the hard negatives measured in issue 6', () => {
  it('a changed number (404 vs 403, cosine 0.995)', () => {
    rejects('What does HTTP status code 404 mean?', 'What does HTTP status code 403 mean?', 'numbers');
  });
  it('an antonym (soft vs hard yolk, 0.994)', () => {
    rejects('How long do I boil an egg for a soft yolk?', 'How long do I boil an egg for a hard yolk?', 'antonym');
  });
  it('an antonym through an abbreviation (maximum vs min, 0.992)', () => {
    rejects("What's the maximum speed limit on the highway?", "What's the minimum speed limit on the highway?", 'antonym');
    rejects("What's the max speed limit on the highway?", "What's the minimum speed limit on the highway?", 'antonym');
  });
  it('key terms in the other order (string to integer vs integer to string, 0.989)', () => {
    rejects('How do I convert a string to an integer in Python?', 'How do I convert an integer to a string in Python?', 'order');
    rejects('How do I convert Celsius to Fahrenheit?', 'How do I convert Fahrenheit to Celsius?', 'order');
    rejects('Is Python faster than Java?', 'Is Java faster than Python?', 'order');
  });
  it('another name (GitHub vs GitLab, 0.97)', () => {
    rejects('How do I create a pull request on GitHub?', 'How do I create a pull request on GitLab?', 'entities');
    rejects('how to connect to redis from node', 'how to connect to mongodb from node');
  });
});

describe('verifier: other hard negatives', () => {
  it('negation, spelled or prefixed', () => {
    rejects('Why is my code working?', "Why isn't my code working?", 'negation');
    rejects('Which fruits are safe for dogs?', 'Which fruits are unsafe for dogs?', 'negation');
    rejects('How do I make a cake with eggs?', 'How do I make a cake without eggs?', 'negation');
  });
  it('number words and digits are the same numbers', () => {
    rejects('How do I split a bill between two people?', 'How do I split a bill between three people?', 'numbers');
    accepts('How do I split a bill between two people?', 'How do I split a bill between 2 people?');
    rejects('What is the difference between UTF-8 and UTF-16?', 'What is the difference between UTF-8 and UTF-32?', 'numbers');
  });
  it('a unit or a content word substituted', () => {
    rejects('How many ounces are in a pound?', 'How many grams are in a pound?', 'substitution');
    rejects('What is the boiling point of water?', 'What is the freezing point of water?', 'substitution');
    rejects('What is the plural of mouse?', 'What is the plural of moose?', 'substitution');
    rejects('How do I write a for loop in Bash?', 'How do I write a while loop in Bash?');
  });
  it('units around a connector swapped', () => {
    rejects('What is 100 degrees Fahrenheit in Celsius?', 'What is 100 degrees Celsius in Fahrenheit?', 'order');
    rejects('How do I redirect HTTP to HTTPS in nginx?', 'How do I redirect HTTPS to HTTP in nginx?', 'order');
  });
  it('subject and object swapped around the question word', () => {
    rejects('What does a lion hunt?', 'What hunts a lion?', 'order');
    rejects('How does stress affect sleep?', 'How does sleep affect stress?', 'order');
  });
  it('a particle reversed', () => {
    rejects('How do I zoom in on a Mac?', 'How do I zoom out on a Mac?', 'antonym');
    rejects('How do I turn on Bluetooth on Windows?', 'How do I turn off Bluetooth on Windows?', 'antonym');
  });
  it('a qualifier added', () => {
    rejects('How do I sort a list in Python?', 'How do I sort a list in descending order in Python?', 'added_term');
    rejects('How do I make pancakes?', 'How do I make vegan pancakes?', 'added_term');
  });
  it('another question word', () => {
    rejects('Why did the Roman Empire fall?', 'When did the Roman Empire fall?', 'question_word');
    rejects('How do birds migrate?', 'Why do birds migrate?', 'question_word');
  });
});

describe('verifier: paraphrases pass', () => {
  it('a phrase moved', () => {
    accepts('How do I reverse a list in Python?', 'In Python, how do I reverse a list?');
    accepts('What is the boiling point of water at sea level?', 'At sea level, what is the boiling point of water?');
  });
  it('question frames, politeness and imperatives', () => {
    accepts('How do I check if a file exists in Bash?', "What's the best way to check if a file exists in Bash?");
    accepts('Can you please tell me how to make a cup of green tea?', 'How do I make a cup of green tea?');
    accepts('Explain recursion.', 'What is recursion?');
    accepts('How can I remove duplicates from an array in JavaScript?', 'How do I remove duplicates from an array in JavaScript?');
  });
  it('case, contractions and punctuation', () => {
    accepts('how do i exit vim', 'How do I exit Vim?');
    accepts('WHAT IS THE CAPITAL OF CANADA', 'What is the capital of Canada?');
    accepts("Why doesn't my React component re-render?", 'Why does my React component not re-render?');
    accepts('What is the capital of Japan?', "What's Japan's capital?");
  });
  it('synonyms, abbreviations and typos', () => {
    accepts('How do I delete a branch in Git?', 'How do I remove a branch in Git?');
    accepts('What is the biggest planet in the solar system?', 'What is the largest planet in the solar system?');
    accepts('How do I declare a constant in JS?', 'How do I declare a constant in JavaScript?');
    accepts('What is the diffrence between a virus and bacteria?', 'What is the difference between a virus and bacteria?');
    accepts('How do I recieve payments with Stripe?', 'How do I receive payments with Stripe?');
  });
  it('voice changes that keep the roles', () => {
    accepts('Who invented the telephone?', 'By whom was the telephone invented?');
  });
});

describe('verifier: configuration', () => {
  it('extra synonyms turn a rejection into a hit; extra antonyms the reverse', () => {
    const custom = new QuestionVerifier({ lexicon: { synonyms: [['invoice', 'bill']], antonyms: [['premium', 'basic']] } });
    assert.equal(verifier.verify('Where do I find my invoice?', 'Where do I find my bill?').ok, false);
    assert.ok(custom.verify('Where do I find my invoice?', 'Where do I find my bill?').ok);
    const v = custom.verify('What does the premium plan include?', 'What does the basic plan include?');
    assert.equal(v.ok, false);
    assert.equal(!v.ok && v.reason, 'antonym');
  });
  it('a check turned off no longer rejects', () => {
    const noNumbers = new QuestionVerifier({ checks: { numbers: false } });
    assert.ok(noNumbers.verify('What does HTTP status code 404 mean?', 'What does HTTP status code 403 mean?').ok);
  });
});

describe('verifier helpers', () => {
  it('isOneBlockMove: a rotation of the differing middle, nothing else', () => {
    assert.ok(isOneBlockMove(['a', 'b', 'c'], ['a', 'b', 'c']));
    assert.ok(isOneBlockMove(['rev', 'list', '>in', 'py'], ['>in', 'py', 'rev', 'list']));
    assert.ok(isOneBlockMove(['x', 'a', 'b', 'c', 'y'], ['x', 'c', 'a', 'b', 'y']));
    assert.equal(isOneBlockMove(['str', '>to', 'int'], ['int', '>to', 'str']), false);
    assert.equal(isOneBlockMove(['a', 'b'], ['a']), false);
  });
  it('isTypoOf: one letter dropped, added or two swapped, in long words only', () => {
    assert.ok(isTypoOf('diffrence', 'difference'));
    assert.ok(isTypoOf('recieve', 'receive'));
    assert.equal(isTypoOf('millimeter', 'milliliter'), false);
    assert.equal(isTypoOf('mouse', 'moose'), false);
    assert.equal(isTypoOf('kilobyte', 'kilobite'), false);
  });
  it('stem: inflections meet, different words stay apart', () => {
    assert.equal(stem('boiling'), stem('boil'));
    assert.equal(stem('boiled'), stem('boils'));
    assert.equal(stem('cities'), stem('city'));
    assert.equal(stem('making'), stem('make'));
    assert.notEqual(stem('string'), stem('sting'));
    assert.equal(stem('status'), 'status');
  });
});
