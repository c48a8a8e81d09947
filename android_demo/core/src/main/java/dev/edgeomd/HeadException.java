package dev.edgeomd;

import java.io.IOException;

/** A feature-head folder (manifest.json, tokenizer.json) cannot be used. */
public class HeadException extends IOException {
    private static final long serialVersionUID = 1L;

    public HeadException(String message) {
        super(message);
    }

    public HeadException(String message, Throwable cause) {
        super(message, cause);
    }
}
