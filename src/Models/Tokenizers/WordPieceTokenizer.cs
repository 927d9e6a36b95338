using System.Text;
using Microsoft.ML.Tokenizers;

namespace EdgeSlm.Models.Tokenizers;

/// <summary>
/// Text to token ids for a BERT model: Microsoft.ML.Tokenizers' <see cref="BertTokenizer"/> over the model's own
/// vocabulary, [CLS] ... [SEP] around the WordPiece ids, truncated to the model's context. Lower-cases input
/// and strips accents when the vocabulary has no capitalised tokens (uncased models such as all-MiniLM-L6-v2).
/// </summary>
public sealed class WordPieceTokenizer
{
    private readonly BertTokenizer _tokenizer;
    private readonly IReadOnlyList<string> _vocabulary;

    public WordPieceTokenizer(IReadOnlyList<string> vocabulary, int contextLength)
    {
        _vocabulary = vocabulary;
        var text = new StringBuilder();
        foreach (string token in vocabulary)
        {
            text.Append(token).Append('\n');
        }
        // Uncased vocabularies have no ASCII capitals outside [SPECIAL] tokens (they may hold symbols such as ℝ).
        LowerCase = !vocabulary.Any(t => !(t.Length > 2 && t[0] == '[' && t[^1] == ']') && t.Any(c => c is >= 'A' and <= 'Z'));
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(text.ToString()));
        _tokenizer = BertTokenizer.Create(stream, new BertOptions { LowerCaseBeforeTokenization = LowerCase });
        ContextLength = contextLength;
        ClsId = IdOf(vocabulary, "[CLS]");
        SepId = IdOf(vocabulary, "[SEP]");
    }

    public bool LowerCase { get; }
    public int ContextLength { get; }
    public int ClsId { get; }
    public int SepId { get; }

    /// <summary>[CLS] wordpieces [SEP], at most <see cref="ContextLength"/> ids; <paramref name="truncated"/> says whether text was cut.</summary>
    public int[] Encode(string text, out bool truncated)
    {
        if (LowerCase)
        {
            text = AccentFolding.Fold(text);
        }
        IReadOnlyList<int> ids = _tokenizer.EncodeToIds(text, ContextLength - 2, addSpecialTokens: false, out string? normalized, out int consumed, considerPreTokenization: true, considerNormalization: true);
        string basis = normalized ?? text;
        truncated = consumed < basis.Length && basis[consumed..].Any(c => !char.IsWhiteSpace(c));
        var result = new int[ids.Count + 2];
        result[0] = ClsId;
        for (int i = 0; i < ids.Count; i++)
        {
            result[i + 1] = ids[i];
        }
        result[^1] = SepId;
        return result;
    }

    public int[] Encode(string text) => Encode(text, out _);

    /// <summary>
    /// Where each of <paramref name="ids"/> (as <see cref="Encode(string, out bool)"/> gave them for
    /// <paramref name="text"/>) came from: UTF-16 ranges [starts[i], ends[i]) of the text; [CLS] gets the empty range
    /// at 0 and [SEP] the empty range at the end of what was read. Each piece is found by spelling it from where the
    /// one before ended (accents folded, case ignored when the vocabulary is uncased); an [UNK] covers the rest of its
    /// word. Allocates nothing.
    /// </summary>
    public void PieceRanges(string text, ReadOnlySpan<int> ids, Span<int> starts, Span<int> ends)
    {
        if (starts.Length != ids.Length || ends.Length != ids.Length)
        {
            throw new ArgumentException($"{ids.Length} pieces need {ids.Length} starts and ends");
        }
        int position = 0;
        for (int i = 0; i < ids.Length; i++)
        {
            int id = ids[i];
            if (id == ClsId || id == SepId)
            {
                starts[i] = ends[i] = id == ClsId ? 0 : position;
                continue;
            }
            string piece = (uint)id < (uint)_vocabulary.Count ? _vocabulary[id] : "[UNK]";
            bool continuation = piece.StartsWith("##", StringComparison.Ordinal);
            ReadOnlySpan<char> spelling = continuation ? piece.AsSpan(2) : piece.AsSpan();
            if (!continuation)
            {
                while (position < text.Length && (char.IsWhiteSpace(text[position]) || char.IsControl(text[position])))
                {
                    position++;
                }
            }
            int start = position;
            if (piece == "[UNK]")
            {
                // An unknown word: up to the next space or punctuation (BERT's pre-tokenizer splits there).
                if (position < text.Length && IsPunctuation(text[position]))
                {
                    position++;
                }
                else
                {
                    while (position < text.Length && !char.IsWhiteSpace(text[position]) && !IsPunctuation(text[position]))
                    {
                        position++;
                    }
                }
            }
            else if (Spells(text, position, spelling))
            {
                position += spelling.Length;
            }
            else
            {
                // Normalisation the spelling does not follow (a character the tokenizer replaced): one character.
                position = Math.Min(text.Length, position + 1);
            }
            starts[i] = start;
            ends[i] = position;
        }
    }

    private bool Spells(string text, int position, ReadOnlySpan<char> spelling)
    {
        if (position + spelling.Length > text.Length)
        {
            return false;
        }
        for (int k = 0; k < spelling.Length; k++)
        {
            char c = text[position + k];
            if (LowerCase)
            {
                c = char.ToLowerInvariant(AccentFolding.FoldChar(c));
            }
            if (c != spelling[k])
            {
                return false;
            }
        }
        return true;
    }

    private static bool IsPunctuation(char c) => char.IsPunctuation(c) || char.IsSymbol(c) || (c is >= '!' and <= '/') || (c is >= ':' and <= '@') || (c is >= '[' and <= '`') || (c is >= '{' and <= '~');

    private static int IdOf(IReadOnlyList<string> vocabulary, string token)
    {
        for (int i = 0; i < vocabulary.Count; i++)
        {
            if (vocabulary[i] == token)
            {
                return i;
            }
        }
        throw new ArgumentException($"the vocabulary has no {token} token");
    }
}
