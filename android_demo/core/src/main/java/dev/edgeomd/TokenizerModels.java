package dev.edgeomd;

import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * tokenizer.json's "model" (the third stage of {@link Tokenizer}): one pre-tokenised word to
 * vocabulary ids. WordPiece (greedy longest prefix, "##" continuations) and WordLevel live
 * here, byte-level BPE in {@link BpeModel}; any other type is refused with a HeadException.
 */
final class TokenizerModels {
    private TokenizerModels() {
    }

    interface Model {
        /** Tokens of one pre-token: ids with [start, end) in the pre-token's UTF-16 units. */
        void tokenize(String word, List<int[]> out);

        String idToToken(int id);
    }

    static Model model(Map<String, Object> j) throws HeadException {
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
                return new BpeModel(vocab, inv, Json.arr(j.get("merges")), (String) j.get("unk_token"),
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
}
