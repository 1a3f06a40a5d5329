// mkref.js writes tokenizers_ref.json: ids computed by the Hugging Face tokenizers library (the
// Rust core that transformers' CLIPTokenizer runs on) for prompts beyond the fixture cases:
// edge cases of normalisation, splitting and added tokens, and random strings. It complements
// testdata/fixtures/tokenizer/cases.safetensors (made with transformers itself).
//
// Made with node 20 and the npm package tokenizers@0.23.2, from the repository root:
//
//	npm install --prefix /tmp/tokref tokenizers@0.23.2
//	NODE_PATH=/tmp/tokref/node_modules node diffusion/tokenizer/testdata/mkref.js
//
// Tokenizers: the tiny models' tokenizer.json files as they are (models/sdxl/tokenizer pads
// with <|endoftext|>, tokenizer_2 with "!", an added token), and the same two with the full
// vocabulary of tokenizer/clip_full put in. Ids include bos and eos, without truncation.
const fs = require("fs");
const path = require("path");
const { Tokenizer } = require("tokenizers");

const fixtures = path.join("testdata", "fixtures");
const out = path.join("diffusion", "tokenizer", "testdata", "tokenizers_ref.json");

function tokenizerJSON(sub, full, extra) {
  const tj = JSON.parse(fs.readFileSync(path.join(fixtures, "models", "sdxl", sub, "tokenizer.json"), "utf8"));
  if (full) {
    const vocab = JSON.parse(fs.readFileSync(path.join(fixtures, "tokenizer", "clip_full", "vocab.json"), "utf8"));
    const merges = fs.readFileSync(path.join(fixtures, "tokenizer", "clip_full", "merges.txt"), "utf8")
      .split("\n").filter((l) => l && !l.startsWith("#version")).map((l) => l.split(" "));
    tj.model.vocab = vocab;
    tj.model.merges = merges;
    for (const a of tj.added_tokens) a.id = vocab[a.content];
    tj.post_processor.sep[1] = vocab["<|endoftext|>"];
    tj.post_processor.cls[1] = vocab["<|startoftext|>"];
  }
  if (extra) {
    // Added tokens as textual-inversion code and hand-made configs add them, in this order;
    // ids past the vocabulary are handed out in order (tokenizer_test.go adds the same).
    let next = 49408;
    for (const [content, opts] of extra) {
      const id = content in tj.model.vocab ? tj.model.vocab[content] : next++;
      tj.added_tokens.push({ id, content, single_word: !!opts.single_word, lstrip: !!opts.lstrip,
        rstrip: !!opts.rstrip, normalized: !!opts.normalized, special: false });
    }
  }
  const file = path.join(require("os").tmpdir(), `mkref_${sub}_${full}_${!!extra}.json`);
  fs.writeFileSync(file, JSON.stringify(tj));
  return Tokenizer.fromFile(file);
}

// The fixture prompts.
function fixturePrompts() {
  const b = fs.readFileSync(path.join(fixtures, "tokenizer", "cases.safetensors"));
  const n = Number(b.readBigUInt64LE(0));
  const h = JSON.parse(b.subarray(8, 8 + n).toString("utf8"));
  return JSON.parse(h.__metadata__.case).prompts.map((p) => p.text);
}

const edge = [
  "cafe\u0301 nai\u0308ve re\u0301sume\u0301",          // decomposed accents: NFC composes them
  "A\u030A A\u0301\u0323 a\u0323\u0301 q\u0307\u0323",  // canonical ordering and composition
  "\u1100\u1161\u11A8 \u1112\u1161\u11AB\u1100\u1173\u11AF", // Hangul jamo compose to syllables
  "\u0958\u0959 \u2126 \u212B \u0344",                   // composition exclusions and singletons
  "\u0130stanbul \u0049\u0307 D\u0130YARBAKIR",          // İ lowercases to i + U+0307
  "\u03A3\u0391\u03A3 \u039F\u0394\u039F\u03A3 \u03C3\u03C2", // no final-sigma rule
  "\u01C5 \u01C8 \u1E9E \u2C62 \u0399\u0308\u0301",      // title case, capital sharp s
  "<|ENDOFTEXT|> <|StartOfText|>!",                      // not added tokens: split as text
  "<|endoftext|>! x<|startoftext|>y !<|endoftext|>",     // added tokens next to text
  "!<|endoftext|>!! <|endoftext|>!",                     // the split pattern's literal specials
  "hello!!! wow!? !!! a!b!c ! !",                       // "!" as text or as the pad token
  "'s 'S ''s 'll've 'RE 'x ' don'T it''s",               // contractions
  "\u0000 a\u0000b \u0000\u0000",                        // NUL
  "\uFFFD bad \uFFFD\uFFFD",                             // replacement characters
  "a\u00A0b\u3000c\u0085d\u2028e\u2029f\u200Bg\u180Eh\u001Ci\u000Bj\u000Ck\rl",  // white space and not
  "\u2003\u2002 lead and trail \t\n ",
  "\u0663\u0664 \u2167 \u00BD \uFF11\uFF12 \u0967\u0968 \u2460",   // other numbers, one at a time
  "\u200D\u200C \uD83D\uDC68\u200D\uD83D\uDC69\u200D\uD83D\uDC67 \uD83C\uDFF3\uFE0F\u200D\uD83C\uDF08", // ZWJ emoji
  "\u0301\u0301\u0301 \u0301a \u05D0\u05B8 \u0E01\u0E34\u0E4A",    // leading marks, Hebrew, Thai
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbb",  // BPE tie-breaking
  "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
  "(((masterpiece))), [[[bad]]], {{{x}}}, <lora:foo:0.8>, (cat:1.3) AND dog BREAK tree",
  "http://example.com/a_b-c?d=e&f=g#h user@example.com C:\\path\\to",
  "\uFB01\uFB02 \u2122 \u00B2 \u210C \u2460 \u3392",     // compatibility characters stay (no NFKC)
  "\uFF37\uFF49\uFF44\uFF45 \uFF2C\uFF21\uFF34\uFF29\uFF2E",
  "Stra\u00DFe STRASSE \u00C6sir \u0152uvre \u00D8resund",
  "\u0391\u0301 \u03B1\u0301 \u1F71 \u1FBB",             // Greek tonos/oxia: singletons decompose
  "\u00E9\u0301 e\u0301\u0301 \u1EC7 e\u0323\u0302 e\u0302\u0323",
  "mixed\u0009tabs\u000Aand\u000D\u000Alines",
  "\u4F60\u597D\u4E16\u754C \u3053\u3093\u306B\u3061\u306F \uD55C\uAD6D\uC5B4",
  "x".repeat(300),
  "ab".repeat(150) + " " + "1".repeat(20),
];

// The added tokens of the "full_added" tokenizer (mirrored in ref_test.go).
const addedTokens = [
  ["<cat-toy>", { normalized: true }],
  ["<cat-toy>-big", { normalized: true }],
  ["[L]", { lstrip: true }],
  ["[R]", { rstrip: true }],
  ["sw", { single_word: true }],
  ["Zz", { normalized: true }],
  ["dog", { normalized: true, single_word: true }],
  ["\u00C9t\u00E9", { normalized: true }],
];
const addedTexts = [
  "a photo of <cat-toy> on a beach", "<CAT-TOY> <Cat-Toy>!", "<cat-toy>-big <cat-toy>-bigger<cat-toy>",
  "x [L] y", "x   [L]y", "[L][L] [l]", "a [R]   b", "[R]", "[R]\t\n[R]x", "  [L]  [R]  ",
  "sw swim a sw b,sw. _sw sw_ sw1 1sw \u00e9sw sw\u0301", "zZ ZZ zz zzz", "hotdog dog dogs Dog DOG. dog",
  "\u00c9t\u00e9 \u00e9t\u00e9 E\u0301te\u0301 \u00c9T\u00c9", "<|endoftext|><cat-toy><|startoftext|>",
];
const addedAlphabet = ["<cat-toy>", "<CAT-toy>", "-big", "[L]", "[R]", "sw", "Zz", "dog", "\u00c9t\u00e9", " ", "  ", "a", "!", "\u0301", "_", "1", "\t"];

// A seeded generator (mulberry32) for the random strings.
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const alphabet = [
  ..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
  ..."     \t\n!!!'''\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~",
  "'s", "'t", "'re", "'ll", "<|endoftext|>", "<|startoftext|>", "<|ENDOFTEXT|>",
  "\u00E9", "e\u0301", "\u00C9", "\u00F1", "n\u0303", "\u00DF", "\u0130", "\u03A3", "\u03C2",
  "\u0301", "\u0323", "\u0308", "\u0345", "\u1100", "\u1161", "\u11A8", "\uAC00",
  "\u4E00", "\u3042", "\u0627", "\u0915", "\u094D", "\u0E01", "\u00A0", "\u3000", "\u0085",
  "\u0000", "\u001F", "\u007F", "\uFFFD", "\u200B", "\u200D", "\uFB01", "\uFF21", "\u0663",
  "\u2167", "\u00BD", "\uD83D\uDE00", "\uD83D\uDC31", "\u2764\uFE0F", "\u00AD", "\u2019",
];
function randomStrings(n, seed, letters = alphabet) {
  const r = rng(seed);
  const out = [];
  for (let i = 0; i < n; i++) {
    let s = "";
    const len = 1 + Math.floor(r() * 40);
    for (let j = 0; j < len; j++) s += letters[Math.floor(r() * letters.length)];
    out.push(s);
  }
  return out;
}

(async () => {
  const toks = {
    tiny_eot: tokenizerJSON("tokenizer", false),
    tiny_bang: tokenizerJSON("tokenizer_2", false),
    full_eot: tokenizerJSON("tokenizer", true),
    full_bang: tokenizerJSON("tokenizer_2", true),
    full_added: tokenizerJSON("tokenizer", true, addedTokens),
  };
  const plan = [
    [fixturePrompts(), ["tiny_eot", "tiny_bang", "full_eot", "full_bang"]],
    [edge, ["tiny_eot", "tiny_bang", "full_eot", "full_bang"]],
    [randomStrings(200, 1234), ["tiny_bang", "full_eot"]],
    [randomStrings(200, 5678), ["full_bang"]],
    [addedTexts.concat(randomStrings(100, 91011, addedAlphabet)), ["full_added"]],
  ];
  const cases = [];
  for (const [texts, names] of plan) {
    for (const name of names) {
      for (const text of texts) {
        const e = await toks[name].encode(text);
        cases.push({ tokenizer: name, text, ids: e.getIds() });
      }
    }
  }
  const made = "tokenizers 0.23.2 (npm, node " + process.version + "), by testdata/mkref.js";
  fs.writeFileSync(out, JSON.stringify({ made_by: made, cases }, null, 0).replace(/\},\{/g, "},\n{") + "\n");
  console.log(cases.length, "cases written to", out);
})();
