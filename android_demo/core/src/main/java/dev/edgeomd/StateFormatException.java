package dev.edgeomd;

import java.io.IOException;

/** A serialised state is corrupt, truncated, of an unknown version, foreign or inconsistent. */
public class StateFormatException extends IOException {
    private static final long serialVersionUID = 1L;

    public StateFormatException(String message) {
        super(message);
    }
}
