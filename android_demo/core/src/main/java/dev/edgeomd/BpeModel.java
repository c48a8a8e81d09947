package dev.edgeomd;

import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Byte-pair encoding (tokenizer.json "model": "BPE"; GPT-2 / Llama-3 / Qwen2): a word starts as
 * one symbol per code point (byte fallback and unk fusing as configured) and the adjacent pair
 * with the lowest merge rank is merged until none is left; ignore_merges takes a whole word that
 * is in the vocabulary as it is.
 */
final class BpeModel implements TokenizerModels.Model {
    final Map<String, Integer> vocab;
    final String[] inv;
    final Map<Long, long[]> merges = new HashMap<>();  // (a, b) -> {rank, new id}
    final String unk, prefix, suffix;
    final boolean ignoreMerges, byteFallback, fuseUnk;

    BpeModel(Map<String, Integer> vocab, String[] inv, List<Object> mergeList, String unk, String prefix,
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
