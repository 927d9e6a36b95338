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

    public WordPieceTokenizer(IReadOnlyList<string> vocabulary, int contextLength)
    {
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
