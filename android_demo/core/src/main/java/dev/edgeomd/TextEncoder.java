package dev.edgeomd;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Text -> padded token arrays for a feature head (edge_omd/head/tokenize.py, the same contract):
 * text = template with {prompt} and {response} spliced in; ids = tokenizer.encode(text,
 * add_special_tokens); over max_length the prompt is cut first, from its start, then the
 * response, keeping the template's head and tail tokens (so the last token is always kept);
 * rows padded to the batch's longest (or a static length) on the manifest's side. The response
 * span (pool_mask of "response_mean" heads) runs from the first token ending after the
 * response's first code point to the row's end (response + template tail + trailing specials);
 * truncation shifts it with the cut; an empty span becomes the last token.
 */
public final class TextEncoder {
    public static final String PROMPT_SLOT = "{prompt}", RESPONSE_SLOT = "{response}";

    public final Tokenizer tokenizer;
    public final String template;
    public final int maxLength;
    public final boolean addSpecialTokens;
    public final int padTokenId;
    public final String paddingSide;
    private final String pre, mid, post;

    public TextEncoder(Tokenizer tokenizer, String template, int maxLength, boolean addSpecialTokens, int padTokenId,
                       String paddingSide) {
        int p = template.indexOf(PROMPT_SLOT);
        int r = p < 0 ? -1 : template.indexOf(RESPONSE_SLOT, p + PROMPT_SLOT.length());
        if (p < 0 || r < 0) {
            throw new InvalidInputException("template must contain " + PROMPT_SLOT + " then " + RESPONSE_SLOT);
        }
        if (!"left".equals(paddingSide) && !"right".equals(paddingSide)) {
            throw new InvalidInputException("padding_side must be 'left' or 'right', got '" + paddingSide + "'");
        }
        this.tokenizer = tokenizer;
        this.template = template;
        String t = scalarText(template);
        this.pre = t.substring(0, p);
        this.mid = t.substring(p + PROMPT_SLOT.length(), r);
        this.post = t.substring(r + RESPONSE_SLOT.length());
        this.maxLength = maxLength;
        this.addSpecialTokens = addSpecialTokens;
        this.padTokenId = padTokenId;
        this.paddingSide = paddingSide;
    }

    /** From a manifest's keys: template, max_length, add_special_tokens, pad_token_id, padding_side. */
    public static TextEncoder fromManifest(Map<String, Object> m, Tokenizer tok) {
        return new TextEncoder(tok, (String) m.get("template"), (int) Json.integer(m.get("max_length")),
                (Boolean) m.get("add_special_tokens"), (int) Json.integer(m.get("pad_token_id")),
                m.get("padding_side") == null ? "right" : (String) m.get("padding_side"));
    }

    /** The exact text that is tokenized for one pair (lone surrogates as U+FFFD). */
    public String render(String prompt, String response) {
        return pre + scalarText(prompt) + mid + scalarText(response) + post;
    }

    /**
     * s with each lone surrogate (a UTF-16 unit of U+D800..U+DFFF that is not half of a pair)
     * replaced by U+FFFD, one unit for one: edge_omd/head/tokenize.py's rule, so text cut in the
     * middle of a pair gets the same tokens on every side.
     */
    public static String scalarText(String s) {
        StringBuilder out = null;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) {
                i++;
            } else if (Character.isSurrogate(c)) {
                if (out == null) {
                    out = new StringBuilder(s);
                }
                out.setCharAt(i, '\uFFFD');
            }
        }
        return out == null ? s : out.toString();
    }

    /** Token ids of one pair; truncated[0] tells whether they were cut. */
    public int[] encodeOne(String prompt, String response, boolean truncate, boolean[] truncated) {
        return encodeSpan(prompt, response, truncate, truncated, null);
    }

    /** Token ids of one pair; spanStart[0] (if given) = where the pooled response span begins. */
    public int[] encodeSpan(String prompt, String response, boolean truncate, boolean[] truncated,
                            int[] spanStart) {
        String text = render(prompt, response);
        Tokenizer.Encoding enc = tokenizer.encode(text, addSpecialTokens);
        int n = enc.size();
        if (n == 0) {
            throw new InvalidInputException("the prompt/response pair produced no tokens (empty text and a "
                    + "template without special tokens); pass non-empty text");
        }
        if (truncated != null) {
            truncated[0] = false;
        }
        int p0 = cp(pre);
        int r0 = cp(pre) + cp(prompt) + cp(mid);
        int r1 = r0 + cp(response);
        int h = 0;
        while (h < n && ((enc.special[h] && enc.start[h] == 0 && enc.end[h] == 0)
                || (enc.end[h] <= p0 && enc.end[h] > 0))) {
            h++;
        }
        int t = n;
        while (t > h && ((enc.special[t - 1] && enc.start[t - 1] == 0 && enc.end[t - 1] == 0)
                || enc.start[t - 1] >= r1)) {
            t--;
        }
        int s = h;
        while (s < t && enc.end[s] <= r0) {
            s++;
        }
        if (n <= maxLength) {
            if (spanStart != null) {
                spanStart[0] = Math.min(s, n - 1);
            }
            return enc.ids.clone();
        }
        if (!truncate) {
            throw new InvalidInputException("the pair has " + n + " tokens, over this head's max_length "
                    + maxLength + "; shorten it or pass truncate=true");
        }
        int budget = maxLength - h - (n - t);
        if (budget < 1) {
            throw new InvalidInputException("the template alone takes " + (h + n - t) + " tokens, leaving no room "
                    + "for text within max_length " + maxLength);
        }
        int[] out = new int[h + budget + (n - t)];
        System.arraycopy(enc.ids, 0, out, 0, h);
        System.arraycopy(enc.ids, t - budget, out, h, budget);
        System.arraycopy(enc.ids, t, out, h + budget, n - t);
        if (truncated != null) {
            truncated[0] = true;
        }
        if (spanStart != null) {
            spanStart[0] = Math.min(h + Math.max(s - (t - budget), 0), out.length - 1);
        }
        return out;
    }

    private static int cp(String s) {
        return s.codePointCount(0, s.length());
    }

    /** A padded batch: ids, attention mask and response-span pool mask (rows x T; the graph of a
     *  "response_mean" head takes pool as its input pool_mask) and how many rows were truncated. */
    public static final class Batch {
        public final long[][] ids, mask, pool;
        public final int truncated;

        Batch(long[][] ids, long[][] mask, long[][] pool, int truncated) {
            this.ids = ids;
            this.mask = mask;
            this.pool = pool;
            this.truncated = truncated;
        }
    }

    /** pairs[i] = {prompt, response}; padTo &lt;= 0: pad to the longest row. */
    public Batch encodeBatch(List<String[]> pairs, boolean truncate, int padTo) throws HeadException {
        List<int[]> rows = new ArrayList<>();
        List<Integer> starts = new ArrayList<>();
        int nTrunc = 0;
        boolean[] cut = new boolean[1];
        int[] start = new int[1];
        int longest = 0;
        for (String[] pr : pairs) {
            int[] ids = encodeSpan(pr[0], pr[1], truncate, cut, start);
            rows.add(ids);
            starts.add(start[0]);
            nTrunc += cut[0] ? 1 : 0;
            longest = Math.max(longest, ids.length);
        }
        if (padTo > 0 && padTo < longest) {
            throw new HeadException("a row has " + longest + " tokens but the graph takes " + padTo + " (static shape) "
                    + "while max_length is " + maxLength + "; the head's manifest is inconsistent: re-export the head");
        }
        int T = padTo > 0 ? padTo : longest;
        long[][] ids = new long[rows.size()][T], mask = new long[rows.size()][T], pool = new long[rows.size()][T];
        for (int i = 0; i < rows.size(); i++) {
            int[] r = rows.get(i);
            Arrays.fill(ids[i], padTokenId);
            int off = "right".equals(paddingSide) ? 0 : T - r.length;
            for (int k = 0; k < r.length; k++) {
                ids[i][off + k] = r[k];
                mask[i][off + k] = 1;
                pool[i][off + k] = k >= starts.get(i) ? 1 : 0;
            }
        }
        return new Batch(ids, mask, pool, nTrunc);
    }
}
