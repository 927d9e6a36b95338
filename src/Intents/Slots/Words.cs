namespace EdgeSlm.Intents.Slots;

/// <summary>
/// A word of an utterance: a run of letters (with inner apostrophes, "o'clock"), a run of digits (with inner '.', ','
/// or ':' between digits, "3.5", "1,000", "6:30"), or a lone '%' or '°'. <see cref="Text"/> is lower case with a
/// typographic apostrophe made plain; Start and End index the original string.
/// </summary>
internal readonly record struct Word(int Start, int End, string Text, bool IsDigits);

internal static class Words
{
    /// <summary>Splits text into words; everything else (spaces, hyphens, other punctuation) only separates them.</summary>
    public static List<Word> Split(string text)
    {
        var words = new List<Word>();
        int i = 0;
        while (i < text.Length)
        {
            char c = text[i];
            int start = i;
            if (char.IsAsciiDigit(c))
            {
                i++;
                while (i < text.Length && (char.IsAsciiDigit(text[i])
                    || (text[i] is '.' or ',' or ':' && i + 1 < text.Length && char.IsAsciiDigit(text[i + 1]))))
                {
                    i++;
                }
                words.Add(new Word(start, i, text[start..i], IsDigits: true));
            }
            else if (char.IsLetter(c))
            {
                i++;
                while (i < text.Length && (char.IsLetter(text[i]) || (IsApostrophe(text[i]) && i + 1 < text.Length && char.IsLetter(text[i + 1]))))
                {
                    i++;
                }
                words.Add(new Word(start, i, text[start..i].ToLowerInvariant().Replace('\u2019', '\''), IsDigits: false));
            }
            else if (c is '%' or '°')
            {
                i++;
                words.Add(new Word(start, i, c.ToString(), IsDigits: false));
            }
            else
            {
                i++;
            }
        }
        return words;
    }

    private static bool IsApostrophe(char c) => c is '\'' or '\u2019';
}
