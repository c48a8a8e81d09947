package dev.edgeomd;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * tokenizer.json's "post_processor" (the last stage of {@link Tokenizer}): special tokens around
 * the sequence (TemplateProcessing, BertProcessing, RobertaProcessing) and ByteLevel's offset
 * trimming; any other type is refused with a HeadException.
 */
final class PostProcessors {
    private PostProcessors() {
    }

    interface Post {
        List<Tokenizer.Tok> apply(List<Tokenizer.Tok> toks, boolean addSpecial);
    }

    static Post post(Map<String, Object> j) throws HeadException {
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
                    List<Tokenizer.Tok> out = new ArrayList<>();
                    for (Object[] it : items) {
                        if (it.length == 1) {
                            out.addAll(toks);
                        } else {
                            int[] ids = (int[]) it[0];
                            String[] names = (String[]) it[1];
                            for (int k = 0; k < ids.length; k++) {
                                out.add(new Tokenizer.Tok(ids[k], 0, 0, true, names[k]));
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
                    List<Tokenizer.Tok> out = new ArrayList<>();
                    out.add(new Tokenizer.Tok(clsId, 0, 0, true, (String) cls.get(0)));
                    out.addAll(toks);
                    out.add(new Tokenizer.Tok(sepId, 0, 0, true, (String) sep.get(0)));
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
                    List<Tokenizer.Tok> x = toks;
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
    private static void trimOffsets(List<Tokenizer.Tok> toks, boolean addPrefixSpace) {
        for (int i = 0; i < toks.size(); i++) {
            Tokenizer.Tok t = toks.get(i);
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
