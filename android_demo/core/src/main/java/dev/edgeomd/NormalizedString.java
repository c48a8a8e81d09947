package dev.edgeomd;

/**
 * The text a tokenizer.json pipeline passes along (the Rust library's NormalizedString): the
 * normalised characters and, per UTF-16 unit, the [a0, a1) range of the original text each came
 * from, so every token's offsets point into what the user typed. Normalizers, pre-tokenizers
 * and the models only ever append to or slice it.
 */
final class NormalizedString {
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

    void ensure(int n) {
        if (n > a0.length) {
            int m = Math.max(n, 2 * a0.length);
            a0 = java.util.Arrays.copyOf(a0, m);
            a1 = java.util.Arrays.copyOf(a1, m);
        }
    }

    static NormalizedString of(String text, int from, int to) {
        NormalizedString n = new NormalizedString();
        for (int i = from; i < to; ) {
            int cp = text.codePointAt(i);
            int w = Character.charCount(cp);
            n.appendCp(cp, i, i + w);
            i += w;
        }
        return n;
    }

    NormalizedString sub(int from, int to) {
        NormalizedString n = new NormalizedString();
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
