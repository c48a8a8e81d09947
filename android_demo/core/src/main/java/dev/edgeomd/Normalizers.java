package dev.edgeomd;

import static dev.edgeomd.UnicodeClasses.isChinese;
import static dev.edgeomd.UnicodeClasses.isOther;
import static dev.edgeomd.UnicodeClasses.isWhite;

import java.text.Normalizer;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * tokenizer.json's "normalizer" (the first stage of {@link Tokenizer}): BertNormalizer,
 * Lowercase, NFC/NFKC/NFD/NFKD and Sequence, each keeping every character aligned to the
 * original text; any other type is refused with a HeadException naming it.
 */
final class Normalizers {
    private Normalizers() {
    }

    interface Norm {
        NormalizedString apply(NormalizedString in);
    }

    static Norm norm(Map<String, Object> j) throws HeadException {
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
                    NormalizedString n = in;
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
        void map(int cp, NormalizedString out, int o0, int o1);
    }

    private static NormalizedString mapCodePoints(NormalizedString in, CpMap f) {
        NormalizedString out = new NormalizedString();
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

    private static NormalizedString bertNormalize(NormalizedString in, boolean clean, boolean chinese, boolean strip, boolean lower) {
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
    private static NormalizedString unicodeNorm(NormalizedString in, Normalizer.Form form) {
        String s = in.toString();
        if (Normalizer.isNormalized(s, form)) {
            return in;
        }
        NormalizedString out = new NormalizedString();
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
}
