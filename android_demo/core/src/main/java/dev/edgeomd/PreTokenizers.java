package dev.edgeomd;

import static dev.edgeomd.UnicodeClasses.isPunct;
import static dev.edgeomd.UnicodeClasses.isWhite;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * tokenizer.json's "pre_tokenizer" (the second stage of {@link Tokenizer}): cuts the normalised
 * text into words, each still aligned to the original text. BertPreTokenizer, Whitespace,
 * WhitespaceSplit, ByteLevel (GPT-2 regex, bytes as characters), Split (the library's
 * SplitDelimiterBehavior), Digits and Sequence; any other type is refused with a HeadException.
 */
final class PreTokenizers {
    private PreTokenizers() {
    }

    interface PreTok {
        List<NormalizedString> apply(List<NormalizedString> in);
    }

    static final String GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

    static Pattern regex(String pattern) {
        return Pattern.compile(pattern, Pattern.UNICODE_CHARACTER_CLASS | Pattern.UNICODE_CASE);
    }

    static PreTok pre(Map<String, Object> j) throws HeadException {
        String type = (String) j.get("type");
        switch (type) {
            case "BertPreTokenizer":
                return in -> eachWord(in, PreTokenizers::bertSplit);
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
                    NormalizedString x = w;
                    if (prefix && (x.length() == 0 || x.s.charAt(0) != ' ')) {
                        NormalizedString y = new NormalizedString();
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
                    List<NormalizedString> parts = useRegex ? splitRegex(x, p, "Isolated", false, false) : java.util.Collections.singletonList(x);
                    List<NormalizedString> out = new ArrayList<>();
                    for (NormalizedString part : parts) {
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
                    List<NormalizedString> x = in;
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
        List<NormalizedString> split(NormalizedString w);
    }

    private static List<NormalizedString> eachWord(List<NormalizedString> in, WordSplit f) {
        List<NormalizedString> out = new ArrayList<>();
        for (NormalizedString w : in) {
            for (NormalizedString x : f.split(w)) {
                if (x.length() > 0) {
                    out.add(x);
                }
            }
        }
        return out;
    }

    private static List<NormalizedString> bertSplit(NormalizedString w) {
        List<NormalizedString> out = new ArrayList<>();
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
    private static List<NormalizedString> splitRegex(NormalizedString w, Pattern p, String behavior, boolean invert, boolean keepOnlyMatches) {
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
        List<NormalizedString> out = new ArrayList<>();
        for (int[] sp : res) {
            out.add(w.sub(sp[0], sp[1]));
        }
        return out;
    }

    static final char[] BYTE_CHAR = new char[256];

    static {
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
            BYTE_CHAR[b] = keep ? (char) b : (char) (256 + n++);
        }
    }

    /** Each code point becomes its UTF-8 bytes as byte-level characters, aligned to the code point. */
    private static NormalizedString byteLevel(NormalizedString w) {
        NormalizedString out = new NormalizedString();
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
}
