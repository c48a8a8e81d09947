package dev.edgeomd;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

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

    // ------------------------------------------------------------------ normalised strings
    /** A string with, per UTF-16 unit, the [a0, a1) range of the original text it came from. */
    static final class NStr {
        final StringBuilder s = new StringBuilder();
        int[] a0 = new int[16], a1 = new int[16];

        int length() {
            return s.length();
        }

        void appendCp(int cp, int o0, int o1) {
            int n = Character.charCount(cp);
            ensure(s.length() + n);
            for (int k = 0; k < n; k++) {
                a0[s.length() + k] = o0;
                a1[s.length() + k] = o1;
            }
            s.appendCodePoint(cp);
        }

        void appendStr(CharSequence str, int o0, int o1) {
            for (int i = 0; i < str.length(); ) {
                int cp = Character.codePointAt(str, i);
                appendCp(cp, o0, o1);
                i += Character.charCount(cp);
            }
        }

        private void ensure(int n) {
            if (n > a0.length) {
                int m = Math.max(n, 2 * a0.length);
                a0 = java.util.Arrays.copyOf(a0, m);
                a1 = java.util.Arrays.copyOf(a1, m);
            }
        }

        static NStr of(String text, int from, int to) {
            NStr n = new NStr();
            for (int i = from; i < to; ) {
                int cp = text.codePointAt(i);
                int w = Character.charCount(cp);
                n.appendCp(cp, i, i + w);
                i += w;
            }
            return n;
        }

        NStr sub(int from, int to) {
            NStr n = new NStr();
            n.ensure(to - from);
            n.s.append(s, from, to);
            System.arraycopy(a0, from, n.a0, 0, to - from);
            System.arraycopy(a1, from, n.a1, 0, to - from);
            return n;
        }

        int origStart(int i) {
            return a0[i];
        }

        int origEnd(int i) {
            return a1[i - 1];
        }

        @Override
        public String toString() {
            return s.toString();
        }
    }

    interface Norm {
        NStr apply(NStr in);
    }

    interface PreTok {
        List<NStr> apply(List<NStr> in);
    }

    interface Model {
        /** Tokens of one pre-token: ids with [start, end) in the pre-token's UTF-16 units. */
        void tokenize(String word, List<int[]> out);

        String idToToken(int id);
    }

    interface Post {
        List<Tok> apply(List<Tok> toks, boolean addSpecial);
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
    private final Norm normalizer;
    private final PreTok preTokenizer;
    private final Model model;
    private final Post post;

    private Tokenizer(Map<String, Object> j) throws HeadException {
        Object added = j.get("added_tokens");
        if (added != null) {
            for (Object o : Json.arr(added)) {
                Added a = new Added(Json.obj(o));
                (a.normalized ? addedNorm : addedRaw).add(a);
                vocabAll.put(a.content, a.id);
            }
        }
        normalizer = j.get("normalizer") == null ? null : norm(Json.obj(j.get("normalizer")));
        preTokenizer = j.get("pre_tokenizer") == null ? null : pre(Json.obj(j.get("pre_tokenizer")));
        model = model(Json.obj(j.get("model")));
        post = j.get("post_processor") == null ? null : post(Json.obj(j.get("post_processor")));
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
        NStr n = NStr.of(text, from, to);
        if (normalizer != null) {
            n = normalizer.apply(n);
        }
        List<Object> parts = new ArrayList<>();  // NStr, or int[] {added index, o0, o1}
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
            NStr part = (NStr) po;
            List<NStr> words = new ArrayList<>();
            words.add(part);
            if (preTokenizer != null) {
                words = preTokenizer.apply(words);
            }
            List<int[]> pieces = new ArrayList<>();
            for (NStr w : words) {
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

    // ------------------------------------------------------------------ unicode classes
    /** Unicode White_Space (Rust char::is_whitespace). */
    static boolean isWhite(int c) {
        return (c >= 0x9 && c <= 0xd) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680
                || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f
                || c == 0x3000;
    }

    static boolean isPunct(int c) {
        if (c < 128 && ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))) {
            return true;
        }
        switch (Character.getType(c)) {
            case Character.CONNECTOR_PUNCTUATION:
            case Character.DASH_PUNCTUATION:
            case Character.END_PUNCTUATION:
            case Character.FINAL_QUOTE_PUNCTUATION:
            case Character.INITIAL_QUOTE_PUNCTUATION:
            case Character.OTHER_PUNCTUATION:
            case Character.START_PUNCTUATION:
                return true;
            default:
                return false;
        }
    }

    static boolean isOther(int c) {
        switch (Character.getType(c)) {
            case Character.CONTROL:
            case Character.FORMAT:
            case Character.PRIVATE_USE:
            case Character.SURROGATE:  // not UNASSIGNED: the Rust library keeps Cn characters
                return true;
            default:
                return false;
        }
    }

    static boolean isChinese(int c) {
        return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF)
                || (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF)
                || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
    }

    // ------------------------------------------------------------------ normalizers
    private static Norm norm(Map<String, Object> j) throws HeadException {
        String type = (String) j.get("type");
        switch (type) {
            case "BertNormalizer": {
                boolean clean = !Boolean.FALSE.equals(j.get("clean_text"));
                boolean chinese = !Boolean.FALSE.equals(j.get("handle_chinese_chars"));
                boolean lower = !Boolean.FALSE.equals(j.get("lowercase"));
                Object sa = j.get("strip_accents");
                boolean strip = sa == null ? lower : (Boolean) sa;
                return in -> bertNormalize(in, clean, chinese, strip, lower);
            }
            case "Lowercase":
                return in -> mapCodePoints(in, (cp, out, o0, o1) -> out.appendStr(lower(cp), o0, o1));
            case "NFC":
                return in -> unicodeNorm(in, Normalizer.Form.NFC);
            case "NFKC":
                return in -> unicodeNorm(in, Normalizer.Form.NFKC);
            case "NFD":
                return in -> unicodeNorm(in, Normalizer.Form.NFD);
            case "NFKD":
                return in -> unicodeNorm(in, Normalizer.Form.NFKD);
            case "Sequence": {
                List<Norm> seq = new ArrayList<>();
                for (Object o : Json.arr(j.get("normalizers"))) {
                    seq.add(norm(Json.obj(o)));
                }
                return in -> {
                    NStr n = in;
                    for (Norm x : seq) {
                        n = x.apply(n);
                    }
                    return n;
                };
            }
            default:
                throw new HeadException("tokenizer normalizer '" + type + "' is not supported by the Java tokenizer");
        }
    }

    interface CpMap {
        void map(int cp, NStr out, int o0, int o1);
    }

    private static NStr mapCodePoints(NStr in, CpMap f) {
        NStr out = new NStr();
        String s = in.toString();
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            int w = Character.charCount(cp);
            f.map(cp, out, in.a0[i], in.a1[i + w - 1]);
            i += w;
        }
        return out;
    }

    private static String lower(int cp) {
        return new String(Character.toChars(cp)).toLowerCase(Locale.ROOT);
    }

    private static NStr bertNormalize(NStr in, boolean clean, boolean chinese, boolean strip, boolean lower) {
        return mapCodePoints(in, (cp, out, o0, o1) -> {
            if (clean) {
                if (cp == 0 || cp == 0xfffd || (cp != '\t' && cp != '\n' && cp != '\r' && isOther(cp))) {
                    return;
                }
                if (isWhite(cp)) {
                    cp = ' ';
                }
            }
            boolean pad = chinese && isChinese(cp);
            if (pad) {
                out.appendCp(' ', o0, o1);
            }
            String piece = new String(Character.toChars(cp));
            if (strip) {
                String dec = Normalizer.normalize(piece, Normalizer.Form.NFD);
                StringBuilder b = new StringBuilder();
                for (int i = 0; i < dec.length(); ) {
                    int c = dec.codePointAt(i);
                    if (Character.getType(c) != Character.NON_SPACING_MARK) {
                        b.appendCodePoint(c);
                    }
                    i += Character.charCount(c);
                }
                piece = b.toString();
            }
            if (lower) {
                piece = piece.toLowerCase(Locale.ROOT);
            }
            out.appendStr(piece, o0, o1);
            if (pad) {
                out.appendCp(' ', o0, o1);
            }
        });
    }

    /**
     * NFC/NFKC/NFD/NFKD with alignments: the text is cut before every code point that starts a
     * new combining sequence (not a mark, not a Hangul medial/final jamo), each chunk is
     * normalised on its own and its output aligned to the chunk's original range.
     */
    private static NStr unicodeNorm(NStr in, Normalizer.Form form) {
        String s = in.toString();
        if (Normalizer.isNormalized(s, form)) {
            return in;
        }
        NStr out = new NStr();
        int i = 0;
        while (i < s.length()) {
            int j = i + Character.charCount(s.codePointAt(i));
            while (j < s.length()) {
                int c = s.codePointAt(j);
                int t = Character.getType(c);
                boolean joins = t == Character.NON_SPACING_MARK || t == Character.COMBINING_SPACING_MARK
                        || t == Character.ENCLOSING_MARK || (c >= 0x1160 && c <= 0x11FF) || (c >= 0xD7B0 && c <= 0xD7FF);
                if (!joins) {
                    break;
                }
                j += Character.charCount(c);
            }
            String chunk = Normalizer.normalize(s.substring(i, j), form);
            if (chunk.equals(s.substring(i, j))) {
                for (int k = i; k < j; k++) {  // unchanged: keep the fine alignment
                    out.ensure(out.length() + 1);
                    out.a0[out.length()] = in.a0[k];
                    out.a1[out.length()] = in.a1[k];
                    out.s.append(s.charAt(k));
                }
            } else {
                // Like the Rust library: walk output and input together by their decomposed
                // lengths; an output char takes the alignment of the input char it starts in (a
                // composed char: its first source; an expansion: every piece the same source).
                Normalizer.Form dec = form == Normalizer.Form.NFC || form == Normalizer.Form.NFD
                        ? Normalizer.Form.NFD : Normalizer.Form.NFKD;
                int src = i, remaining = 0;
                for (int q = 0; q < chunk.length(); ) {
                    int c = chunk.codePointAt(q);
                    int need = dlen(new String(Character.toChars(c)), dec);
                    if (remaining == 0 && src < j) {
                        remaining = dlen(s.substring(src, src + Character.charCount(s.codePointAt(src))), dec);
                    }
                    int first = Math.min(src, j - 1);
                    if (Character.isLowSurrogate(s.charAt(first)) && first > i) {
                        first--;
                    }
                    int w = Character.charCount(s.codePointAt(first));
                    out.appendCp(c, in.a0[first], in.a1[first + w - 1]);
                    while (need > 0 && src < j) {
                        int take = Math.min(need, remaining);
                        need -= take;
                        remaining -= take;
                        if (remaining == 0) {
                            src += Character.charCount(s.codePointAt(src));
                            if (need > 0 && src < j) {
                                remaining = dlen(s.substring(src, src + Character.charCount(s.codePointAt(src))), dec);
                            }
                        }
                    }
                    q += Character.charCount(c);
                }
            }
            i = j;
        }
        return out;
    }

    private static int dlen(String x, Normalizer.Form dec) {
        String d = Normalizer.normalize(x, dec);
        return Math.max(1, d.codePointCount(0, d.length()));
    }

    // ------------------------------------------------------------------ pre-tokenizers
    static final String GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    static Pattern regex(String pattern) {
        return Pattern.compile(pattern, Pattern.UNICODE_CHARACTER_CLASS | Pattern.UNICODE_CASE);
    }

    private static PreTok pre(Map<String, Object> j) throws HeadException {
        String type = (String) j.get("type");
        switch (type) {
            case "BertPreTokenizer":
                return in -> eachWord(in, Tokenizer::bertSplit);
            case "Whitespace": {
                Pattern p = regex("\\w+|[^\\w\\s]+");
                return in -> eachWord(in, w -> splitRegex(w, p, "Isolated", false, true));
            }
            case "WhitespaceSplit":
                return in -> eachWord(in, w -> splitRegex(w, regex("\\s+"), "Removed", false, false));
            case "ByteLevel": {
                boolean prefix = Boolean.TRUE.equals(j.get("add_prefix_space"));
                boolean useRegex = !Boolean.FALSE.equals(j.get("use_regex"));
                Pattern p = regex(GPT2_PATTERN);
                return in -> eachWord(in, w -> {
                    NStr x = w;
                    if (prefix && (x.length() == 0 || x.s.charAt(0) != ' ')) {
                        NStr y = new NStr();
                        int o0 = x.length() > 0 ? x.a0[0] : 0;
                        y.appendCp(' ', o0, x.length() > 0 ? x.a1[0] : 0);
                        for (int k = 0; k < x.length(); k++) {
                            y.ensure(y.length() + 1);
                            y.a0[y.length()] = x.a0[k];
                            y.a1[y.length()] = x.a1[k];
                            y.s.append(x.s.charAt(k));
                        }
                        x = y;
                    }
                    List<NStr> parts = useRegex ? splitRegex(x, p, "Isolated", false, false) : java.util.Collections.singletonList(x);
                    List<NStr> out = new ArrayList<>();
                    for (NStr part : parts) {
                        out.add(byteLevel(part));
                    }
                    return out;
                });
            }
            case "Split": {
                Map<String, Object> pat = Json.obj(j.get("pattern"));
                Pattern p = pat.containsKey("Regex") ? regex((String) pat.get("Regex"))
                        : Pattern.compile(Pattern.quote((String) pat.get("String")));
                String behavior = (String) j.get("behavior");
                boolean invert = Boolean.TRUE.equals(j.get("invert"));
                return in -> eachWord(in, w -> splitRegex(w, p, behavior, invert, false));
            }
            case "Digits": {
                boolean single = Boolean.TRUE.equals(j.get("individual_digits"));
                Pattern p = regex(single ? "\\p{Nd}" : "\\p{Nd}+");
                return in -> eachWord(in, w -> splitRegex(w, p, "Isolated", false, false));
            }
            case "Sequence": {
                List<PreTok> seq = new ArrayList<>();
                for (Object o : Json.arr(j.get("pretokenizers"))) {
                    seq.add(pre(Json.obj(o)));
                }
                return in -> {
                    List<NStr> x = in;
                    for (PreTok p : seq) {
                        x = p.apply(x);
                    }
                    return x;
                };
            }
            default:
                throw new HeadException("tokenizer pre_tokenizer '" + type + "' is not supported by the Java tokenizer");
        }
    }

    interface WordSplit {
        List<NStr> split(NStr w);
    }

    private static List<NStr> eachWord(List<NStr> in, WordSplit f) {
        List<NStr> out = new ArrayList<>();
        for (NStr w : in) {
            for (NStr x : f.split(w)) {
                if (x.length() > 0) {
                    out.add(x);
                }
            }
        }
        return out;
    }

    private static List<NStr> bertSplit(NStr w) {
        List<NStr> out = new ArrayList<>();
        String s = w.toString();
        int start = -1;
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            int n = Character.charCount(cp);
            if (isWhite(cp)) {
                if (start >= 0) {
                    out.add(w.sub(start, i));
                    start = -1;
                }
            } else if (isPunct(cp)) {
                if (start >= 0) {
                    out.add(w.sub(start, i));
                    start = -1;
                }
                out.add(w.sub(i, i + n));
            } else if (start < 0) {
                start = i;
            }
            i += n;
        }
        if (start >= 0) {
            out.add(w.sub(start, s.length()));
        }
        return out;
    }

    /** Split with the tokenizers library's SplitDelimiterBehavior semantics. */
    private static List<NStr> splitRegex(NStr w, Pattern p, String behavior, boolean invert, boolean keepOnlyMatches) {
        String s = w.toString();
        List<int[]> spans = new ArrayList<>();  // {start, end, isMatch}
        Matcher m = p.matcher(s);
        int pos = 0;
        while (m.find()) {
            if (m.end() == m.start()) {
                continue;
            }
            if (m.start() > pos) {
                spans.add(new int[]{pos, m.start(), 0});
            }
            spans.add(new int[]{m.start(), m.end(), 1});
            pos = m.end();
        }
        if (pos < s.length()) {
            spans.add(new int[]{pos, s.length(), 0});
        }
        if (invert) {
            for (int[] sp : spans) {
                sp[2] = 1 - sp[2];
            }
        }
        List<int[]> res = new ArrayList<>();
        switch (behavior) {
            case "Isolated":
                for (int[] sp : spans) {
                    if (!keepOnlyMatches || sp[2] == 1) {
                        res.add(sp);
                    }
                }
                break;
            case "Removed":
                for (int[] sp : spans) {
                    if (sp[2] == 0) {
                        res.add(sp);
                    }
                }
                break;
            case "MergedWithPrevious": {
                for (int[] sp : spans) {
                    if (sp[2] == 1 && !res.isEmpty() && res.get(res.size() - 1)[2] == 0) {
                        res.get(res.size() - 1)[1] = sp[1];
                        res.get(res.size() - 1)[2] = 2;
                    } else {
                        res.add(sp.clone());
                    }
                }
                break;
            }
            case "MergedWithNext": {
                int[] pending = null;
                for (int[] sp : spans) {
                    if (sp[2] == 1) {
                        if (pending != null) {
                            res.add(pending);
                        }
                        pending = sp.clone();
                    } else if (pending != null) {
                        pending[1] = sp[1];
                        res.add(pending);
                        pending = null;
                    } else {
                        res.add(sp);
                    }
                }
                if (pending != null) {
                    res.add(pending);
                }
                break;
            }
            case "Contiguous": {
                for (int[] sp : spans) {
                    int[] last = res.isEmpty() ? null : res.get(res.size() - 1);
                    if (sp[2] == 1 && last != null && last[2] == 1) {
                        last[1] = sp[1];
                    } else {
                        res.add(sp.clone());
                    }
                }
                break;
            }
            default:
                throw new IllegalArgumentException("unknown split behavior " + behavior);
        }
        List<NStr> out = new ArrayList<>();
        for (int[] sp : res) {
            out.add(w.sub(sp[0], sp[1]));
        }
        return out;
    }

    static final char[] BYTE_CHAR = new char[256];
    static final Map<Character, Integer> CHAR_BYTE = new HashMap<>();

    static {
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
            BYTE_CHAR[b] = keep ? (char) b : (char) (256 + n++);
            CHAR_BYTE.put(BYTE_CHAR[b], b);
        }
    }

    /** Each code point becomes its UTF-8 bytes as byte-level characters, aligned to the code point. */
    private static NStr byteLevel(NStr w) {
        NStr out = new NStr();
        String s = w.toString();
        for (int i = 0; i < s.length(); ) {
            int cp = s.codePointAt(i);
            int n = Character.charCount(cp);
            byte[] bytes = new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8);
            if (Character.isSurrogate(s.charAt(i)) && n == 1) {
                bytes = new byte[]{(byte) 0xEF, (byte) 0xBF, (byte) 0xBD};  // lone surrogate -> U+FFFD
            }
            for (byte b : bytes) {
                out.appendCp(BYTE_CHAR[b & 0xff], w.a0[i], w.a1[i + n - 1]);
            }
            i += n;
        }
        return out;
    }

    // ------------------------------------------------------------------ models
    private static Model model(Map<String, Object> j) throws HeadException {
        String type = (String) j.get("type");
        if (type == null) {
            type = j.containsKey("merges") ? "BPE" : "WordPiece";
        }
        Map<String, Object> vocabJ = Json.obj(j.get("vocab"));
        Map<String, Integer> vocab = new HashMap<>(vocabJ.size() * 2);
        int maxId = 0;
        for (Map.Entry<String, Object> e : vocabJ.entrySet()) {
            int id = (int) Json.integer(e.getValue());
            vocab.put(e.getKey(), id);
            maxId = Math.max(maxId, id);
        }
        String[] inv = new String[maxId + 1];
        for (Map.Entry<String, Integer> e : vocab.entrySet()) {
            inv[e.getValue()] = e.getKey();
        }
        switch (type) {
            case "WordPiece":
                return new WordPiece(vocab, inv, (String) j.get("unk_token"),
                        j.get("continuing_subword_prefix") == null ? "##" : (String) j.get("continuing_subword_prefix"),
                        j.get("max_input_chars_per_word") == null ? 100 : (int) Json.integer(j.get("max_input_chars_per_word")));
            case "BPE":
                if (j.get("dropout") != null) {
                    throw new HeadException("BPE dropout is not supported");
                }
                return new Bpe(vocab, inv, Json.arr(j.get("merges")), (String) j.get("unk_token"),
                        (String) j.get("continuing_subword_prefix"), (String) j.get("end_of_word_suffix"),
                        Boolean.TRUE.equals(j.get("ignore_merges")), Boolean.TRUE.equals(j.get("byte_fallback")),
                        Boolean.TRUE.equals(j.get("fuse_unk")));
            case "WordLevel": {
                String unk = (String) j.get("unk_token");
                return new Model() {
                    @Override
                    public void tokenize(String word, List<int[]> out) {
                        Integer id = vocab.get(word);
                        if (id == null && unk != null) {
                            id = vocab.get(unk);
                        }
                        if (id != null) {
                            out.add(new int[]{id, 0, word.length()});
                        }
                    }

                    @Override
                    public String idToToken(int id) {
                        return id < inv.length ? inv[id] : null;
                    }
                };
            }
            default:
                throw new HeadException("tokenizer model '" + type + "' is not supported by the Java tokenizer");
        }
    }

    static final class WordPiece implements Model {
        final Map<String, Integer> vocab;
        final String[] inv;
        final String unk, prefix;
        final int maxChars;

        WordPiece(Map<String, Integer> vocab, String[] inv, String unk, String prefix, int maxChars) {
            this.vocab = vocab;
            this.inv = inv;
            this.unk = unk;
            this.prefix = prefix;
            this.maxChars = maxChars;
        }

        @Override
        public void tokenize(String word, List<int[]> out) {
            int nChars = word.codePointCount(0, word.length());
            if (nChars > maxChars) {
                out.add(new int[]{vocab.get(unk), 0, word.length()});
                return;
            }
            int before = out.size();
            int start = 0;
            while (start < word.length()) {
                int end = word.length();
                Integer cur = null;
                while (start < end) {
                    String sub = word.substring(start, end);
                    if (start > 0) {
                        sub = prefix + sub;
                    }
                    Integer id = vocab.get(sub);
                    if (id != null) {
                        cur = id;
                        break;
                    }
                    end = word.offsetByCodePoints(end, -1);
                }
                if (cur == null) {
                    while (out.size() > before) {
                        out.remove(out.size() - 1);
                    }
                    out.add(new int[]{vocab.get(unk), 0, word.length()});
                    return;
                }
                out.add(new int[]{cur, start, end});
                start = end;
            }
        }

        @Override
        public String idToToken(int id) {
            return id < inv.length ? inv[id] : null;
        }
    }

    static final class Bpe implements Model {
        final Map<String, Integer> vocab;
        final String[] inv;
        final Map<Long, long[]> merges = new HashMap<>();  // (a, b) -> {rank, new id}
        final String unk, prefix, suffix;
        final boolean ignoreMerges, byteFallback, fuseUnk;

        Bpe(Map<String, Integer> vocab, String[] inv, List<Object> mergeList, String unk, String prefix,
            String suffix, boolean ignoreMerges, boolean byteFallback, boolean fuseUnk) throws HeadException {
            this.vocab = vocab;
            this.inv = inv;
            this.unk = unk;
            this.prefix = prefix == null ? "" : prefix;
            this.suffix = suffix == null ? "" : suffix;
            this.ignoreMerges = ignoreMerges;
            this.byteFallback = byteFallback;
            this.fuseUnk = fuseUnk;
            int rank = 0;
            for (Object o : mergeList) {
                String a, b;
                if (o instanceof String) {
                    String s = (String) o;
                    int sp = s.indexOf(' ');
                    if (sp < 0) {
                        throw new HeadException("bad BPE merge '" + s + "'");
                    }
                    a = s.substring(0, sp);
                    b = s.substring(sp + 1);
                } else {
                    List<Object> pair = Json.arr(o);
                    a = (String) pair.get(0);
                    b = (String) pair.get(1);
                }
                Integer ia = vocab.get(a), ib = vocab.get(b);
                String merged = a + (b.startsWith(this.prefix) ? b.substring(this.prefix.length()) : b);
                Integer im = vocab.get(merged);
                if (ia == null || ib == null || im == null) {
                    throw new HeadException("BPE merge '" + a + " " + b + "' refers to tokens missing from the vocab");
                }
                merges.putIfAbsent(((long) ia << 32) | (ib & 0xffffffffL), new long[]{rank, im});
                rank++;
            }
        }

        @Override
        public void tokenize(String word, List<int[]> out) {
            if (ignoreMerges) {
                Integer id = vocab.get(word);
                if (id != null) {
                    out.add(new int[]{id, 0, word.length()});
                    return;
                }
            }
            // initial symbols: one per code point
            int n = word.codePointCount(0, word.length());
            int[] ids = new int[n], st = new int[n], en = new int[n];
            int k = 0;
            for (int i = 0; i < word.length(); ) {
                int cp = word.codePointAt(i);
                int w = Character.charCount(cp);
                String c = new String(Character.toChars(cp));
                if (k > 0 && !prefix.isEmpty()) {
                    c = prefix + c;
                }
                if (i + w == word.length() && !suffix.isEmpty()) {
                    c = c + suffix;
                }
                Integer id = vocab.get(c);
                if (id == null && byteFallback) {
                    byte[] bytes = new String(Character.toChars(cp)).getBytes(StandardCharsets.UTF_8);
                    boolean all = true;
                    for (byte b : bytes) {
                        if (vocab.get(String.format("<0x%02X>", b & 0xff)) == null) {
                            all = false;
                        }
                    }
                    if (all) {  // one symbol per byte, same offsets
                        int[] ids2 = new int[ids.length + bytes.length - 1];
                        System.arraycopy(ids, 0, ids2, 0, k);
                        int[] st2 = java.util.Arrays.copyOf(st, ids2.length), en2 = java.util.Arrays.copyOf(en, ids2.length);
                        for (byte b : bytes) {
                            ids2[k] = vocab.get(String.format("<0x%02X>", b & 0xff));
                            st2[k] = i;
                            en2[k] = i + w;
                            k++;
                        }
                        ids = ids2;
                        st = st2;
                        en = en2;
                        i += w;
                        continue;
                    }
                }
                if (id == null) {
                    if (unk == null || vocab.get(unk) == null) {
                        i += w;
                        continue;  // the Rust library drops a character it cannot represent
                    }
                    id = vocab.get(unk);
                    if (fuseUnk && k > 0 && ids[k - 1] == id) {
                        en[k - 1] = i + w;
                        i += w;
                        continue;
                    }
                }
                ids[k] = id;
                st[k] = i;
                en[k] = i + w;
                k++;
                i += w;
            }
            n = k;
            while (n > 1) {
                long bestRank = Long.MAX_VALUE;
                int bestPos = -1;
                long bestId = 0;
                for (int p = 0; p + 1 < n; p++) {
                    long[] m = merges.get(((long) ids[p] << 32) | (ids[p + 1] & 0xffffffffL));
                    if (m != null && m[0] < bestRank) {
                        bestRank = m[0];
                        bestPos = p;
                        bestId = m[1];
                    }
                }
                if (bestPos < 0) {
                    break;
                }
                ids[bestPos] = (int) bestId;
                en[bestPos] = en[bestPos + 1];
                System.arraycopy(ids, bestPos + 2, ids, bestPos + 1, n - bestPos - 2);
                System.arraycopy(st, bestPos + 2, st, bestPos + 1, n - bestPos - 2);
                System.arraycopy(en, bestPos + 2, en, bestPos + 1, n - bestPos - 2);
                n--;
            }
            for (int p = 0; p < n; p++) {
                out.add(new int[]{ids[p], st[p], en[p]});
            }
        }

        @Override
        public String idToToken(int id) {
            return id < inv.length ? inv[id] : null;
        }
    }

    // ------------------------------------------------------------------ post-processors
    private Post post(Map<String, Object> j) throws HeadException {
        String type = (String) j.get("type");
        switch (type) {
            case "TemplateProcessing": {
                List<Object> single = Json.arr(j.get("single"));
                Map<String, Object> specials = Json.obj(j.get("special_tokens"));
                List<Object[]> items = new ArrayList<>();  // {String "A"} or {int[] ids, String[] tokens}
                for (Object o : single) {
                    Map<String, Object> it = Json.obj(o);
                    if (it.containsKey("Sequence")) {
                        items.add(new Object[]{"A"});
                    } else {
                        String sid = (String) Json.obj(it.get("SpecialToken")).get("id");
                        Map<String, Object> sp = Json.obj(specials.get(sid));
                        long[] ids = Json.longs(sp.get("ids"));
                        List<Object> toks = Json.arr(sp.get("tokens"));
                        int[] iids = new int[ids.length];
                        String[] stoks = new String[ids.length];
                        for (int k = 0; k < ids.length; k++) {
                            iids[k] = (int) ids[k];
                            stoks[k] = (String) toks.get(k);
                        }
                        items.add(new Object[]{iids, stoks});
                    }
                }
                return (toks, add) -> {
                    if (!add) {
                        return toks;
                    }
                    List<Tok> out = new ArrayList<>();
                    for (Object[] it : items) {
                        if (it.length == 1) {
                            out.addAll(toks);
                        } else {
                            int[] ids = (int[]) it[0];
                            String[] names = (String[]) it[1];
                            for (int k = 0; k < ids.length; k++) {
                                out.add(new Tok(ids[k], 0, 0, true, names[k]));
                            }
                        }
                    }
                    return out;
                };
            }
            case "BertProcessing":
            case "RobertaProcessing": {
                List<Object> cls = Json.arr(j.get("cls")), sep = Json.arr(j.get("sep"));
                int clsId = (int) Json.integer(cls.get(1)), sepId = (int) Json.integer(sep.get(1));
                boolean roberta = type.equals("RobertaProcessing");
                boolean trim = roberta && !Boolean.FALSE.equals(j.get("trim_offsets"));
                boolean prefix = roberta && !Boolean.FALSE.equals(j.get("add_prefix_space"));
                return (toks, add) -> {
                    if (trim) {
                        trimOffsets(toks, prefix);
                    }
                    if (!add) {
                        return toks;
                    }
                    List<Tok> out = new ArrayList<>();
                    out.add(new Tok(clsId, 0, 0, true, (String) cls.get(0)));
                    out.addAll(toks);
                    out.add(new Tok(sepId, 0, 0, true, (String) sep.get(0)));
                    return out;
                };
            }
            case "ByteLevel": {
                boolean trim = !Boolean.FALSE.equals(j.get("trim_offsets"));
                boolean prefix = !Boolean.FALSE.equals(j.get("add_prefix_space"));
                return (toks, add) -> {
                    if (trim) {
                        trimOffsets(toks, prefix);
                    }
                    return toks;
                };
            }
            case "Sequence": {
                List<Post> seq = new ArrayList<>();
                for (Object o : Json.arr(j.get("processors"))) {
                    seq.add(post(Json.obj(o)));
                }
                return (toks, add) -> {
                    List<Tok> x = toks;
                    for (Post p : seq) {
                        x = p.apply(x, add);
                    }
                    return x;
                };
            }
            default:
                throw new HeadException("tokenizer post_processor '" + type + "' is not supported by the Java tokenizer");
        }
    }

    /** ByteLevel trim_offsets: leading/trailing spaces ('Ġ') are left out of each token's offsets. */
    private static void trimOffsets(List<Tok> toks, boolean addPrefixSpace) {
        for (int i = 0; i < toks.size(); i++) {
            Tok t = toks.get(i);
            if (t.value == null || t.special) {
                continue;
            }
            String v = t.value;
            int lead = 0, trail = 0;
            while (lead < v.length() && v.charAt(lead) == '\u0120') {
                lead++;
            }
            if (lead == v.length()) {
                trail = 0;
            } else {
                while (trail < v.length() && v.charAt(v.length() - 1 - trail) == '\u0120') {
                    trail++;
                }
            }
            if (lead > 0) {
                boolean first = i == 0 || t.start == 0;
                if (first && addPrefixSpace && lead == 1) {
                    lead = 0;
                }
                t.start = Math.min(t.start + lead, t.end);
            }
            if (trail > 0 && t.end >= trail) {
                t.end = Math.max(t.end - trail, t.start);
            }
        }
    }
}
