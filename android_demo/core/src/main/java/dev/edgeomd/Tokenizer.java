package dev.edgeomd;

import static dev.edgeomd.UnicodeClasses.isWhite;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A plain-Java reader of Hugging Face {@code tokenizer.json} files, enough for the feature heads
 * edge-omd exports: WordPiece (BERT family: BertNormalizer, BertPreTokenizer) and byte-level BPE
 * (GPT-2 / Llama-3 / Qwen2: Split regex + ByteLevel, NFC, ignore_merges), with added and special
 * tokens matched in the raw text, and the TemplateProcessing / BertProcessing / RobertaProcessing /
 * ByteLevel post-processors. It reproduces the Rust library's ids, offsets (in code points, as
 * Python reports them) and special-token masks; tests/android checks them on 1,000+ texts.
 *
 * Anything else in a tokenizer.json (e.g. SentencePiece Metaspace / Unigram) is refused at load
 * with a HeadException naming the unsupported component, never silently mis-tokenised.
 * Unicode tables come from the JVM / Android runtime (java.lang.Character, java.text.Normalizer),
 * so characters newer than the runtime's Unicode version may be classified differently.
 *
 * <p>This class holds the added tokens and the encode loop; the stages it runs, in order, over
 * a {@link NormalizedString}: {@link Normalizers}, {@link PreTokenizers}, {@link TokenizerModels}
 * (WordPiece, WordLevel) or {@link BpeModel}, {@link PostProcessors}.
 */
public final class Tokenizer {
    /** One encoded text: ids, [start, end) offsets in code points of the input, special-token mask. */
    public static final class Encoding {
        public final int[] ids;
        public final int[] start;
        public final int[] end;
        public final boolean[] special;

        Encoding(List<Tok> toks, String text) {
            int n = toks.size();
            ids = new int[n];
            start = new int[n];
            end = new int[n];
            special = new boolean[n];
            int[] cp = cpIndex(text);
            for (int i = 0; i < n; i++) {
                Tok t = toks.get(i);
                ids[i] = t.id;
                start[i] = cp[t.start];
                end[i] = cp[t.end];
                special[i] = t.special;
            }
        }

        public int size() {
            return ids.length;
        }
    }

    /** A token with offsets in UTF-16 units of the original text. */
    static final class Tok {
        final int id;
        int start, end;
        final boolean special;
        final String value;

        Tok(int id, int start, int end, boolean special, String value) {
            this.id = id;
            this.start = start;
            this.end = end;
            this.special = special;
            this.value = value;
        }
    }

    /** cp[i] = number of code points in text[0, i) for i in [0, length]. */
    static int[] cpIndex(String text) {
        int[] cp = new int[text.length() + 1];
        int c = 0;
        for (int i = 0; i < text.length(); i++) {
            cp[i] = c;
            if (!(Character.isLowSurrogate(text.charAt(i)) && i > 0 && Character.isHighSurrogate(text.charAt(i - 1)))) {
                c++;
            }
        }
        cp[text.length()] = c;
        // a low surrogate belongs to the code point that starts one unit before it
        for (int i = 1; i < text.length(); i++) {
            if (Character.isLowSurrogate(text.charAt(i)) && Character.isHighSurrogate(text.charAt(i - 1))) {
                cp[i] = cp[i - 1];
            }
        }
        return cp;
    }

    static final class Added {
        final String content;
        final int id;
        final boolean special, normalized, lstrip, rstrip, singleWord;

        Added(Map<String, Object> j) {
            content = (String) j.get("content");
            id = (int) Json.integer(j.get("id"));
            special = Boolean.TRUE.equals(j.get("special"));
            normalized = Boolean.TRUE.equals(j.get("normalized"));
            lstrip = Boolean.TRUE.equals(j.get("lstrip"));
            rstrip = Boolean.TRUE.equals(j.get("rstrip"));
            singleWord = Boolean.TRUE.equals(j.get("single_word"));
        }
    }

    private final List<Added> addedRaw = new ArrayList<>(), addedNorm = new ArrayList<>();
    private final Map<String, Integer> vocabAll = new HashMap<>();
    private final Normalizers.Norm normalizer;
    private final PreTokenizers.PreTok preTokenizer;
    private final TokenizerModels.Model model;
    private final PostProcessors.Post post;

    private Tokenizer(Map<String, Object> j) throws HeadException {
        Object added = j.get("added_tokens");
        if (added != null) {
            for (Object o : Json.arr(added)) {
                Added a = new Added(Json.obj(o));
                (a.normalized ? addedNorm : addedRaw).add(a);
                vocabAll.put(a.content, a.id);
            }
        }
        normalizer = j.get("normalizer") == null ? null : Normalizers.norm(Json.obj(j.get("normalizer")));
        preTokenizer = j.get("pre_tokenizer") == null ? null : PreTokenizers.pre(Json.obj(j.get("pre_tokenizer")));
        model = TokenizerModels.model(Json.obj(j.get("model")));
        post = j.get("post_processor") == null ? null : PostProcessors.post(Json.obj(j.get("post_processor")));
    }

    /** Parse tokenizer.json text. */
    public static Tokenizer fromJson(String json) throws HeadException {
        try {
            return new Tokenizer(Json.obj(Json.parse(json)));
        } catch (IllegalArgumentException | ClassCastException | NullPointerException e) {
            throw new HeadException("tokenizer.json is corrupt or unsupported (" + e + ")", e);
        }
    }

    public static Tokenizer load(Path path) throws IOException {
        if (!Files.isRegularFile(path)) {
            throw new HeadException("tokenizer file " + path + " is missing; re-export the head");
        }
        return fromJson(new String(Files.readAllBytes(path), StandardCharsets.UTF_8));
    }

    /** Token id of a vocabulary or added token, or -1. */
    public int tokenToId(String token) {
        Integer id = vocabAll.get(token);
        return id == null ? -1 : id;
    }

    // ------------------------------------------------------------------ encode
    public Encoding encode(String text, boolean addSpecialTokens) {
        List<Tok> toks = new ArrayList<>();
        // 1. added tokens that match the raw text split it first
        int pos = 0;
        for (int[] m : findAdded(text, 0, text.length(), addedRaw)) {
            if (m[0] > pos) {
                encodeSegment(text, pos, m[0], toks);
            }
            Added a = addedRaw.get(m[2]);
            toks.add(new Tok(a.id, m[3], m[4], false, a.content));  // mask 1 only for template tokens
            pos = m[1];
        }
        if (pos < text.length()) {
            encodeSegment(text, pos, text.length(), toks);
        }
        if (post != null) {
            toks = post.apply(toks, addSpecialTokens);
        }
        return new Encoding(toks, text);
    }

    private void encodeSegment(String text, int from, int to, List<Tok> out) {
        NormalizedString n = NormalizedString.of(text, from, to);
        if (normalizer != null) {
            n = normalizer.apply(n);
        }
        List<Object> parts = new ArrayList<>();  // NormalizedString, or int[] {added index, o0, o1}
        if (addedNorm.isEmpty()) {
            parts.add(n);
        } else {  // added tokens with normalized=true match the normalised text
            String s = n.toString();
            int p = 0;
            for (int[] m : findAdded(s, 0, s.length(), addedNorm)) {
                if (m[0] > p) {
                    parts.add(n.sub(p, m[0]));
                }
                parts.add(new int[]{m[2], n.origStart(m[0]), n.origEnd(m[1])});
                p = m[1];
            }
            if (p < s.length()) {
                parts.add(n.sub(p, s.length()));
            }
        }
        for (Object po : parts) {
            if (po instanceof int[]) {
                int[] m = (int[]) po;
                Added a = addedNorm.get(m[0]);
                out.add(new Tok(a.id, m[1], m[2], false, a.content));
                continue;
            }
            NormalizedString part = (NormalizedString) po;
            List<NormalizedString> words = new ArrayList<>();
            words.add(part);
            if (preTokenizer != null) {
                words = preTokenizer.apply(words);
            }
            List<int[]> pieces = new ArrayList<>();
            for (NormalizedString w : words) {
                if (w.length() == 0) {
                    continue;
                }
                pieces.clear();
                model.tokenize(w.toString(), pieces);
                for (int[] pc : pieces) {
                    out.add(new Tok(pc[0], w.origStart(pc[1]), w.origEnd(pc[2]), false, model.idToToken(pc[0])));
                }
            }
        }
    }

    /** Leftmost-longest matches of added tokens in s[from, to): {start, end, index, o0, o1}. */
    private static List<int[]> findAdded(String s, int from, int to, List<Added> list) {
        List<int[]> out = new ArrayList<>();
        if (list.isEmpty()) {
            return out;
        }
        int i = from;
        while (i < to) {
            int best = -1, bestLen = 0;
            for (int k = 0; k < list.size(); k++) {
                String c = list.get(k).content;
                if (c.length() > bestLen && s.startsWith(c, i) && i + c.length() <= to) {
                    Added a = list.get(k);
                    if (a.singleWord && !singleWordOk(s, i, i + c.length())) {
                        continue;
                    }
                    best = k;
                    bestLen = c.length();
                }
            }
            if (best < 0) {
                i++;
                continue;
            }
            Added a = list.get(best);
            int s0 = i, s1 = i + bestLen;
            int o0 = s0, o1 = s1;
            if (a.lstrip) {
                int prev = out.isEmpty() ? from : out.get(out.size() - 1)[1];
                while (s0 > prev && isWhite(s.charAt(s0 - 1))) {
                    s0--;
                }
            }
            if (a.rstrip) {
                while (s1 < to && isWhite(s.charAt(s1))) {
                    s1++;
                }
            }
            out.add(new int[]{s0, s1, best, s0, s1});
            i = s1;
        }
        return out;
    }

    private static boolean singleWordOk(String s, int a, int b) {
        boolean before = a == 0 || !isWordChar(s.codePointBefore(a));
        boolean after = b >= s.length() || !isWordChar(s.codePointAt(b));
        return before && after;
    }

    private static boolean isWordChar(int cp) {
        return Character.isLetterOrDigit(cp) || cp == '_';
    }
}
