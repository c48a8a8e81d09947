package dev.edgeomd;

/** An argument to a verb was malformed (length, NaN/inf, range). Nothing was changed. */
public class InvalidInputException extends IllegalArgumentException {
    private static final long serialVersionUID = 1L;

    public InvalidInputException(String message) {
        super(message);
    }
}
