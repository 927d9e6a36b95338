using System.Text;
using EdgeSlm.Models.Gguf;

namespace EdgeSlm.Models.Tokenizers;

/// <summary>
/// A generative model's vocabulary from a GGUF file's <c>tokenizer.ggml.*</c> metadata: what the byte-level BPE and
/// the SentencePiece-style tokenizers share (token texts and types, special ids, end of generation, decoding to bytes).
/// <see cref="FromGguf"/> picks the kind from <c>tokenizer.ggml.model</c>.
/// </summary>
public abstract class DecoderTokenizer
{
    public const string ModelKey = "tokenizer.ggml.model";
    public const string PreKey = "tokenizer.ggml.pre";
    public const string TokensKey = "tokenizer.ggml.tokens";
    public const string ScoresKey = "tokenizer.ggml.scores";
    public const string TokenTypesKey = "tokenizer.ggml.token_type";
    public const string MergesKey = "tokenizer.ggml.merges";
    public const string BosKey = "tokenizer.ggml.bos_token_id";
    public const string EosKey = "tokenizer.ggml.eos_token_id";
    public const string EotKey = "tokenizer.ggml.eot_token_id";
    public const string UnknownKey = "tokenizer.ggml.unknown_token_id";
    public const string AddBosKey = "tokenizer.ggml.add_bos_token";
    public const string AddEosKey = "tokenizer.ggml.add_eos_token";
    public const string AddSpacePrefixKey = "tokenizer.ggml.add_space_prefix";

    /// <summary>llama.cpp's token types (<c>llama_token_type</c>).</summary>
    public enum TokenType
    {
        Undefined = 0,
        Normal = 1,
        Unknown = 2,
        Control = 3,
        UserDefined = 4,
        Unused = 5,
        Byte = 6,
    }

    // Control tokens that end a turn whatever the file's EOS says (llama.cpp marks the same spellings as EOG).
    private static readonly string[] EndOfGenerationSpellings = ["<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<EOT>"];

    private readonly HashSet<int> _endOfGeneration = [];

    protected DecoderTokenizer(string[] tokens, TokenType[] types, int? bos, int? eos, int? eot, bool addBos, bool addEos)
    {
        Tokens = tokens;
        Types = types;
        _specials = Enumerable.Range(0, tokens.Length)
            .Where(i => types[i] is TokenType.Control or TokenType.Unknown or TokenType.UserDefined && tokens[i].Length > 0)
            .OrderByDescending(i => tokens[i].Length).ThenBy(i => i)
            .Select(i => (tokens[i], i, types[i] == TokenType.UserDefined))
            .ToArray();
        foreach ((string text, int id, bool _) in _specials)
        {
            if (EndOfGenerationSpellings.Contains(text) && types[id] == TokenType.Control) _endOfGeneration.Add(id);
        }
        if (eos is int e) _endOfGeneration.Add(e);
        if (eot is int t) _endOfGeneration.Add(t);
        Bos = bos;
        Eos = eos;
        Eot = eot;
        AddBos = addBos;
        AddEos = addEos;
    }

    protected string[] Tokens { get; }
    protected TokenType[] Types { get; }

    /// <summary>
    /// Control, unknown and user-defined tokens by their spelling, longest first (llama.cpp's special-token partition
    /// order); user-defined ones are split off even when specials are not parsed (<see cref="Partition"/>).
    /// </summary>
    private readonly (string Text, int Id, bool Always)[] _specials;

    public int VocabularySize => Tokens.Length;
    public int? Bos { get; }
    public int? Eos { get; }
    public int? Eot { get; }
    public bool AddBos { get; }
    public bool AddEos { get; }

    /// <summary>Whether generation stops at <paramref name="id"/>: EOS, EOT, or a control token spelled as one (&lt;|im_end|&gt;, &lt;|eot_id|&gt; ...).</summary>
    public bool IsEndOfGeneration(int id) => _endOfGeneration.Contains(id);

    public bool IsControl(int id) => (uint)id < (uint)Types.Length && Types[id] == TokenType.Control;

    public TokenType TypeOf(int id) => Types[id];

    public string TokenText(int id) => Tokens[id];

    /// <summary>
    /// Token ids of <paramref name="text"/>. <paramref name="addSpecial"/> adds BOS/EOS where the vocabulary asks
    /// for them; <paramref name="parseSpecial"/> turns control tokens spelled in the text into their ids
    /// (otherwise they are tokenized as text), as llama.cpp's <c>llama_tokenize</c>.
    /// </summary>
    public abstract int[] Encode(string text, bool addSpecial = true, bool parseSpecial = false);

    /// <summary>The bytes token <paramref name="id"/> stands for: nothing for control tokens, the text of user-defined ones.</summary>
    public abstract int TokenBytes(int id, Span<byte> destination);

    /// <summary>The most bytes <see cref="TokenBytes"/> writes for <paramref name="id"/>.</summary>
    public abstract int MaxBytes(int id);

    /// <summary>The text of <paramref name="ids"/> (control tokens print nothing).</summary>
    public virtual string Decode(ReadOnlySpan<int> ids)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            var buffer = new byte[MaxBytes(id)];
            bytes.AddRange(buffer.AsSpan(0, TokenBytes(id, buffer)));
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>
    /// The fragments of <paramref name="text"/> in order, covering it: (start, length, -1) for text, (start, length, id)
    /// for a token spelled in it. As llama.cpp's <c>tokenizer_st_partition</c>: each special token, longest first, is
    /// cut out of every text fragment wherever it occurs; control and unknown tokens only when
    /// <paramref name="parseSpecial"/>, user-defined ones always.
    /// </summary>
    protected List<(int Start, int Length, int Special)> Partition(string text, bool parseSpecial)
    {
        var fragments = new List<(int Start, int Length, int Special)>();
        if (text.Length == 0) return fragments;
        fragments.Add((0, text.Length, -1));
        foreach ((string special, int id, bool always) in _specials)
        {
            if (!parseSpecial && !always) continue;
            for (int f = 0; f < fragments.Count; f++)
            {
                (int start, int length, int kind) = fragments[f];
                if (kind >= 0) continue;
                int at = text.IndexOf(special, start, length, StringComparison.Ordinal);
                if (at < 0) continue;
                fragments.RemoveAt(f);
                int insert = f;
                if (at > start) fragments.Insert(insert++, (start, at - start, -1));
                fragments.Insert(insert++, (at, special.Length, id));
                int rest = start + length - (at + special.Length);
                if (rest > 0) fragments.Insert(insert, (at + special.Length, rest, -1));
                f = insert - 1; // continue with the remainder
            }
        }
        return fragments;
    }

    /// <summary>The tokenizer <c>tokenizer.ggml.model</c> names; every failure names the key.</summary>
    public static DecoderTokenizer FromGguf(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        string model = file.Require(ModelKey).AsString(ModelKey);
        return model switch
        {
            "gpt2" => ByteLevelBpeTokenizer.FromGguf(file),
            "llama" => SentencePieceTokenizer.FromGguf(file),
            _ => throw new GgufFormatException($"metadata '{ModelKey}' = '{model}' is not a tokenizer EdgeSlm reads (gpt2, llama)"),
        };
    }

    protected static string[] ReadTokens(GgufFile file)
    {
        string[] tokens = file.Require(TokensKey).AsArray<string>(TokensKey);
        if (tokens.Length == 0)
        {
            throw new GgufFormatException($"metadata '{TokensKey}' is empty");
        }
        return tokens;
    }

    protected static TokenType[] ReadTokenTypes(GgufFile file, int count)
    {
        var types = new TokenType[count];
        GgufValue? typeValue = file.Get(TokenTypesKey);
        if (typeValue is null)
        {
            Array.Fill(types, TokenType.Normal);
            return types;
        }
        int[] raw = typeValue.AsArray<int>(TokenTypesKey);
        if (raw.Length != count)
        {
            throw new GgufFormatException($"metadata '{TokenTypesKey}' has {raw.Length} entries for {count} tokens");
        }
        for (int i = 0; i < raw.Length; i++)
        {
            if (raw[i] < 0 || raw[i] > 6)
            {
                throw new GgufFormatException($"metadata '{TokenTypesKey}' entry {i} = {raw[i]} is not a token type (0 to 6)");
            }
            types[i] = (TokenType)raw[i];
        }
        return types;
    }

    /// <summary>A token id under <paramref name="key"/>; absent, -1 and 2^32-1 mean none.</summary>
    protected static int? ReadTokenId(GgufFile file, string key, int count)
    {
        GgufValue? value = file.Get(key);
        if (value is null) return null;
        long id = value.AsInt64(key);
        if (id == -1 || id == uint.MaxValue) return null;
        return id >= 0 && id < count ? (int)id : throw new GgufFormatException($"metadata '{key}' = {id} is not a token id (0 to {count - 1})");
    }

    protected static bool ReadFlag(GgufFile file, string key, bool fallback) => file.Get(key)?.AsBool(key) ?? fallback;
}
