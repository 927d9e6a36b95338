using System.Text.RegularExpressions;
using System.Text;
using EdgeSlm.Models.Gguf;

namespace EdgeSlm.Models.Tokenizers;

/// <summary>
/// GPT-2-style byte-level BPE (<c>tokenizer.ggml.model</c> = <c>gpt2</c>) from a GGUF file's metadata, tokenizing as
/// llama.cpp does: control tokens spelled in the text are split off first (only when asked to parse them; user-defined
/// ones always), each remaining piece is cut into words by the pre-tokenizer's regexes (<see cref="BpePreTokenizer"/>),
/// a word's UTF-8 bytes are spelled with GPT-2's byte-to-character map, and merges are applied lowest rank first
/// (leftmost on a tie) until none applies. With <c>ignore_merges</c> (Llama 3's pre-tokenizer) a word that is a token is taken whole.
/// </summary>
public sealed class ByteLevelBpeTokenizer : DecoderTokenizer
{
    private static readonly char[] ByteToChar = BuildByteMap();
    private static readonly int[] CharToByte = BuildCharMap();

    private readonly Dictionary<string, int> _ids;
    private readonly Dictionary<string, int> _mergeRanks; // "left right" -> rank
    private readonly BpePreTokenizer _pre;

    private ByteLevelBpeTokenizer(string[] tokens, TokenType[] types, string[] merges, BpePreTokenizer pre, int? bos, int? eos, int? eot, bool addBos, bool addEos)
        : base(tokens, types, bos, eos, eot, addBos, addEos)
    {
        _pre = pre;
        _ids = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++)
        {
            _ids.TryAdd(tokens[i], i); // llama.cpp keeps the last of duplicates in its map, but the first id is never reached by BPE either way
        }
        _mergeRanks = new Dictionary<string, int>(merges.Length, StringComparer.Ordinal);
        for (int rank = 0; rank < merges.Length; rank++)
        {
            string merge = merges[rank];
            int space = merge.Length > 1 ? merge.IndexOf(' ', 1) : -1;
            if (space < 0 || space == merge.Length - 1)
            {
                throw new GgufFormatException($"metadata '{MergesKey}' entry {rank} is not two tokens separated by a space");
            }
            _mergeRanks.TryAdd(merge, rank);
        }
    }

    public BpePreTokenizer PreTokenizer => _pre;

    /// <summary>Reads a <c>gpt2</c> vocabulary; every failure names the key.</summary>
    public static new ByteLevelBpeTokenizer FromGguf(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        string model = file.Require(ModelKey).AsString(ModelKey);
        if (model != "gpt2")
        {
            throw new GgufFormatException($"metadata '{ModelKey}' = '{model}' is not a byte-level BPE ('gpt2') vocabulary");
        }
        string preName = file.Get(PreKey)?.AsString(PreKey) ?? "default";
        BpePreTokenizer pre = BpePreTokenizer.Find(preName)
            ?? throw new GgufFormatException($"metadata '{PreKey}' = '{preName}' is not a pre-tokenizer EdgeSlm knows ({string.Join(", ", BpePreTokenizer.AllNames)})");
        string[] tokens = ReadTokens(file);
        TokenType[] types = ReadTokenTypes(file, tokens.Length);
        string[] merges = file.Require(MergesKey).AsArray<string>(MergesKey);
        return new ByteLevelBpeTokenizer(tokens, types, merges, pre, ReadTokenId(file, BosKey, tokens.Length),
            ReadTokenId(file, EosKey, tokens.Length), ReadTokenId(file, EotKey, tokens.Length),
            ReadFlag(file, AddBosKey, pre.AddBosByDefault), ReadFlag(file, AddEosKey, false));
    }

    public override int[] Encode(string text, bool addSpecial = true, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        if (addSpecial && AddBos && Bos is int bos)
        {
            ids.Add(bos);
        }
        List<(int Start, int Length, int Special)> fragments = Partition(text, parseSpecial);
        var word = new StringBuilder();
        var symbols = new List<string>();
        foreach ((int start, int length, int special) in fragments)
        {
            if (special >= 0)
            {
                ids.Add(special);
                continue;
            }
            foreach ((int wordStart, int wordLength) in _pre.Split(text.AsSpan(start, length)))
            {
                EncodeWord(text.AsSpan(start + wordStart, wordLength), word, symbols, ids);
            }
        }
        if (addSpecial && AddEos && Eos is int eos)
        {
            ids.Add(eos);
        }
        return ids.ToArray();
    }

    private void EncodeWord(ReadOnlySpan<char> text, StringBuilder word, List<string> symbols, List<int> ids)
    {
        // The word's UTF-8 bytes, one GPT-2 character per byte.
        int byteCount = Encoding.UTF8.GetByteCount(text);
        Span<byte> bytes = byteCount <= 1024 ? stackalloc byte[byteCount] : new byte[byteCount];
        Encoding.UTF8.GetBytes(text, bytes);
        word.Clear();
        foreach (byte b in bytes)
        {
            word.Append(ByteToChar[b]);
        }
        string mapped = word.ToString();
        if (_pre.IgnoreMerges && _ids.TryGetValue(mapped, out int whole))
        {
            ids.Add(whole);
            return;
        }

        // One symbol per character of the mapped word, then merges lowest rank first, leftmost on a tie.
        symbols.Clear();
        for (int i = 0; i < mapped.Length; i++)
        {
            symbols.Add(mapped[i].ToString());
        }
        while (symbols.Count > 1)
        {
            int best = -1;
            int bestRank = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
            {
                if (_mergeRanks.TryGetValue(symbols[i] + " " + symbols[i + 1], out int rank) && rank < bestRank)
                {
                    best = i;
                    bestRank = rank;
                }
            }
            if (best < 0) break;
            symbols[best] += symbols[best + 1];
            symbols.RemoveAt(best + 1);
        }
        foreach (string symbol in symbols)
        {
            if (_ids.TryGetValue(symbol, out int id))
            {
                ids.Add(id);
                continue;
            }
            // A symbol that is no token: its characters (bytes) one by one, those that are tokens.
            foreach (char c in symbol)
            {
                if (_ids.TryGetValue(c.ToString(), out int byteId)) ids.Add(byteId);
            }
        }
    }

    public override int TokenBytes(int id, Span<byte> destination)
    {
        if ((uint)id >= (uint)Tokens.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token ids run from 0 to {Tokens.Length - 1}");
        }
        switch (Types[id])
        {
            case TokenType.Control:
            case TokenType.Unused:
                return 0;
            case TokenType.UserDefined:
                return Encoding.UTF8.GetBytes(Tokens[id], destination);
        }
        string token = Tokens[id];
        int n = 0;
        for (int i = 0; i < token.Length;)
        {
            int b = token[i] < CharToByte.Length ? CharToByte[token[i]] : -1;
            if (b >= 0)
            {
                destination[n++] = (byte)b;
                i++;
                continue;
            }
            // Characters outside GPT-2's byte map stand for themselves: a run of them as UTF-8 (surrogate pairs whole).
            int end = i + 1;
            while (end < token.Length && (token[end] >= CharToByte.Length || CharToByte[token[end]] < 0))
            {
                end++;
            }
            n += Encoding.UTF8.GetBytes(token.AsSpan(i, end - i), destination[n..]);
            i = end;
        }
        return n;
    }

    public override int MaxBytes(int id) => (uint)id < (uint)Tokens.Length ? Encoding.UTF8.GetByteCount(Tokens[id]) : 0;

    /// <summary>GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for 256 + n.</summary>
    private static char[] BuildByteMap()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            map[b] = printable ? (char)b : (char)next++;
        }
        return map;
    }

    private static int[] BuildCharMap()
    {
        var map = new int[512];
        Array.Fill(map, -1);
        for (int b = 0; b < 256; b++)
        {
            map[ByteToChar[b]] = b;
        }
        return map;
    }
}

/// <summary>
/// llama.cpp's pre-tokenizers for byte-level BPE (<c>tokenizer.ggml.pre</c>): regexes applied one after another,
/// each cutting the pieces of the one before into its matches and the text between them.
/// </summary>
public sealed class BpePreTokenizer
{
    private const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    private const string Llama3 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    private const string Qwen2 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private static readonly BpePreTokenizer[] Table =
    [
        new(["default"], [@"[\p{P}\$\+<=>\^~\|]+", Gpt2, @"\p{N}+", "[0-9][0-9][0-9]"]),
        new(["gpt-2"], [Gpt2]),
        new(["llama-bpe", "llama3", "llama-v3"], [Llama3], ignoreMerges: true, addBosByDefault: true),
        new(["qwen2", "deepseek-r1-qwen"], [Qwen2]),
        new(["smollm"], [@"\p{N}", Gpt2]),
    ];

    private readonly Regex[] _regexes;

    private BpePreTokenizer(string[] names, string[] patterns, bool ignoreMerges = false, bool addBosByDefault = false)
    {
        Names = names;
        _regexes = patterns.Select(p => new Regex(p, RegexOptions.CultureInvariant)).ToArray();
        IgnoreMerges = ignoreMerges;
        AddBosByDefault = addBosByDefault;
    }

    public IReadOnlyList<string> Names { get; }
    public string Name => Names[0];

    /// <summary>A word that is itself a token is taken whole, without merges (llama.cpp's <c>ignore_merges</c>).</summary>
    public bool IgnoreMerges { get; }

    /// <summary>Whether llama.cpp adds BOS for this pre-tokenizer when the file does not say.</summary>
    public bool AddBosByDefault { get; }

    public static IEnumerable<string> AllNames => Table.SelectMany(t => t.Names);

    public static BpePreTokenizer? Find(string name) => Table.FirstOrDefault(t => t.Names.Contains(name));

    /// <summary>(start, length) of each word of <paramref name="text"/>, in order, covering all of it.</summary>
    public List<(int Start, int Length)> Split(ReadOnlySpan<char> text)
    {
        var pieces = new List<(int Start, int Length)>();
        if (text.Length > 0) pieces.Add((0, text.Length));
        var next = new List<(int Start, int Length)>();
        foreach (Regex regex in _regexes)
        {
            next.Clear();
            foreach ((int start, int length) in pieces)
            {
                int position = 0;
                foreach (ValueMatch match in regex.EnumerateMatches(text.Slice(start, length)))
                {
                    if (match.Length == 0) continue;
                    if (match.Index > position) next.Add((start + position, match.Index - position));
                    next.Add((start + match.Index, match.Length));
                    position = match.Index + match.Length;
                }
                if (position < length) next.Add((start + position, length - position));
            }
            (pieces, next) = (next, pieces);
        }
        return pieces;
    }
}
