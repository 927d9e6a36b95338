using System.Buffers;
using System.Text;
using EdgeSlm.Models.Gguf;

namespace EdgeSlm.Models.Tokenizers;

/// <summary>
/// SentencePiece-style tokenizer (<c>tokenizer.ggml.model</c> = <c>llama</c>: Llama 1/2, TinyLlama, Mistral) from a
/// GGUF file's metadata, tokenizing as llama.cpp's SPM tokenizer does:
/// <list type="number">
/// <item>control and unknown tokens spelled in the text are split off when asked to parse them, user-defined ones
/// always (llama.cpp's special-token partition, longest first);</item>
/// <item>each remaining text fragment gets a leading space when it starts the text or follows a split-off token
/// (<c>add_space_prefix</c>, default true), and every space becomes U+2581 (▁);</item>
/// <item>the fragment starts as one symbol per Unicode character; the adjacent pair whose concatenation is a token
/// with the highest score merges first (the leftmost on a tie), until no pair forms a token;</item>
/// <item>a symbol that is a token gives its id; one that is not (only single characters can be: every merge forms a
/// token) gives the byte tokens <c>&lt;0xXX&gt;</c> of its UTF-8 bytes (byte fallback).</item>
/// </list>
/// Decoding follows llama.cpp's <c>llama_token_to_piece</c> without specials: ▁ is a space, byte tokens are their
/// byte, control and unknown tokens print nothing, user-defined tokens their text.
/// </summary>
public sealed class SentencePieceTokenizer : DecoderTokenizer
{
    private const char SpaceMark = '\u2581';

    private readonly Dictionary<string, int> _ids;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private readonly float[] _scores;
    private readonly int[] _byteTokens = new int[256]; // byte -> id of <0xXX>
    private readonly byte[][] _pieces; // what each id decodes to

    [ThreadStatic]
    private static Scratch? t_scratch;

    private SentencePieceTokenizer(string[] tokens, TokenType[] types, float[] scores, int? bos, int? eos, int? eot, int? unknown,
        bool addBos, bool addEos, bool addSpacePrefix)
        : base(tokens, types, bos, eos, eot, addBos, addEos)
    {
        _scores = scores;
        Unknown = unknown;
        AddSpacePrefix = addSpacePrefix;
        _ids = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++)
        {
            // llama.cpp refuses a vocabulary with a token twice (its token-to-id map would lose one of them).
            if (!_ids.TryAdd(tokens[i], i))
            {
                throw new GgufFormatException($"metadata '{TokensKey}' has '{Printable(tokens[i])}' twice (ids {_ids[tokens[i]]} and {i})");
            }
        }
        _lookup = _ids.GetAlternateLookup<ReadOnlySpan<char>>();
        Span<char> spelling = stackalloc char[6];
        for (int b = 0; b < 256; b++)
        {
            ByteSpelling((byte)b, spelling);
            if (!_lookup.TryGetValue(spelling, out _byteTokens[b]))
            {
                throw new GgufFormatException($"metadata '{TokensKey}' has no byte token '{spelling}' (byte fallback needs <0x00> to <0xFF>)");
            }
        }
        _pieces = new byte[tokens.Length][];
        for (int i = 0; i < tokens.Length; i++)
        {
            _pieces[i] = Piece(tokens[i], types[i]);
        }
    }

    /// <summary>Whether the text and each fragment after a split-off token gets a leading space (<c>add_space_prefix</c>).</summary>
    public bool AddSpacePrefix { get; }

    /// <summary>The unknown token (&lt;unk&gt;): never produced by byte fallback, only spelled with specials parsed.</summary>
    public int? Unknown { get; }

    /// <summary>Reads a <c>llama</c> vocabulary; every failure names the key.</summary>
    public static new SentencePieceTokenizer FromGguf(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        string model = file.Require(ModelKey).AsString(ModelKey);
        if (model != "llama")
        {
            throw new GgufFormatException($"metadata '{ModelKey}' = '{model}' is not a SentencePiece ('llama') vocabulary");
        }
        string[] tokens = ReadTokens(file);
        TokenType[] types = ReadTokenTypes(file, tokens.Length);
        float[] scores = ReadScores(file, tokens.Length);
        for (int i = 0; i < tokens.Length; i++)
        {
            if (types[i] == TokenType.Byte && ParseByte(tokens[i]) < 0)
            {
                throw new GgufFormatException($"metadata '{TokenTypesKey}' entry {i} marks '{Printable(tokens[i])}' as a byte token, which is not spelled <0xXX>");
            }
        }
        // llama.cpp's defaults for a llama vocabulary: <unk> 0, <s> 1, </s> 2, BOS added, space prefix.
        int? bos = ReadTokenIdOr(file, BosKey, tokens.Length, 1);
        int? eos = ReadTokenIdOr(file, EosKey, tokens.Length, 2);
        int? unknown = ReadTokenIdOr(file, UnknownKey, tokens.Length, 0);
        bool addBos = ReadFlag(file, AddBosKey, true);
        bool addEos = ReadFlag(file, AddEosKey, false);
        if (addBos && bos is null)
        {
            throw new GgufFormatException($"metadata '{AddBosKey}' is true, but '{BosKey}' names no token");
        }
        if (addEos && eos is null)
        {
            throw new GgufFormatException($"metadata '{AddEosKey}' is true, but '{EosKey}' names no token");
        }
        return new SentencePieceTokenizer(tokens, types, scores, bos, eos, ReadTokenId(file, EotKey, tokens.Length), unknown,
            addBos, addEos, ReadFlag(file, AddSpacePrefixKey, true));
    }

    public override int[] Encode(string text, bool addSpecial = true, bool parseSpecial = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = WithoutLoneSurrogates(text);
        var ids = new List<int>(text.Length / 3 + 2);
        if (addSpecial && AddBos)
        {
            ids.Add(Bos!.Value);
        }
        Scratch scratch = t_scratch ??= new Scratch();
        bool afterSpecial = true; // the text's first fragment gets the space prefix too
        foreach ((int start, int length, int special) in Partition(text, parseSpecial))
        {
            if (special >= 0)
            {
                ids.Add(special);
                afterSpecial = true;
                continue;
            }
            // The fragment with its spaces escaped to ▁, after a ▁ for the space prefix.
            int prefix = AddSpacePrefix && afterSpecial ? 1 : 0;
            char[] escaped = scratch.Characters(prefix + length);
            escaped[0] = SpaceMark;
            text.AsSpan(start, length).Replace(escaped.AsSpan(prefix, length), ' ', SpaceMark);
            EncodeFragment(escaped.AsSpan(0, prefix + length), scratch, ids);
            afterSpecial = false;
        }
        if (addSpecial && AddEos)
        {
            ids.Add(Eos!.Value);
        }
        return ids.ToArray();
    }

    private void EncodeFragment(ReadOnlySpan<char> text, Scratch scratch, List<int> ids)
    {
        // One symbol per character (a surrogate pair is one), linked in a list so merges remove the right symbol.
        scratch.Symbols(text.Length, out int[] start, out int[] length, out int[] previous, out int[] next);
        int count = 0;
        for (int i = 0; i < text.Length; count++)
        {
            int n = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            start[count] = i;
            length[count] = n;
            previous[count] = count - 1;
            next[count] = count + 1;
            i += n;
        }
        if (count == 0) return;
        next[count - 1] = -1;

        // Every adjacent pair that forms a token, highest score first, leftmost on a tie. A queued pair is stale
        // once either symbol was merged away or grew (its lengths no longer add up): skip it then.
        PriorityQueue<(int Left, int Right, int Length), (float Score, int Left)> queue = scratch.Queue;
        queue.Clear();
        for (int i = 1; i < count; i++)
        {
            TryQueue(text, start, length, i - 1, i, queue);
        }
        while (queue.TryDequeue(out (int Left, int Right, int Length) pair, out _))
        {
            (int left, int right, int size) = pair;
            if (length[left] == 0 || length[right] == 0 || length[left] + length[right] != size) continue;
            length[left] = size;
            length[right] = 0;
            next[left] = next[right];
            if (next[right] >= 0) previous[next[right]] = left;
            TryQueue(text, start, length, previous[left], left, queue);
            TryQueue(text, start, length, left, next[left], queue);
        }

        // Symbols that are tokens give their id; the rest (single characters) their UTF-8 bytes as byte tokens.
        Span<byte> utf8 = stackalloc byte[4];
        for (int i = 0; i >= 0; i = next[i])
        {
            ReadOnlySpan<char> symbol = text.Slice(start[i], length[i]);
            if (_lookup.TryGetValue(symbol, out int id))
            {
                ids.Add(id);
                continue;
            }
            int bytes = Encoding.UTF8.GetBytes(symbol, utf8);
            for (int b = 0; b < bytes; b++)
            {
                ids.Add(_byteTokens[utf8[b]]);
            }
        }
    }

    /// <summary>Queues the pair (left, right) if together they spell a token.</summary>
    private void TryQueue(ReadOnlySpan<char> text, int[] start, int[] length, int left, int right,
        PriorityQueue<(int Left, int Right, int Length), (float Score, int Left)> queue)
    {
        if (left < 0 || right < 0) return;
        int size = length[left] + length[right];
        if (_lookup.TryGetValue(text.Slice(start[left], size), out int id))
        {
            queue.Enqueue((left, right, size), (_scores[id], left));
        }
    }

    public override int TokenBytes(int id, Span<byte> destination)
    {
        if ((uint)id >= (uint)_pieces.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"token ids run from 0 to {_pieces.Length - 1}");
        }
        byte[] piece = _pieces[id];
        piece.CopyTo(destination);
        return piece.Length;
    }

    public override int MaxBytes(int id) => (uint)id < (uint)_pieces.Length ? _pieces[id].Length : 0;

    /// <summary>
    /// The text of <paramref name="ids"/> as llama.cpp's <c>llama_detokenize</c> gives it (specials neither removed nor
    /// printed): with <c>add_space_prefix</c>, the space the prefix put before the first token is dropped, so that
    /// text encoded without BOS decodes to itself; after a BOS it stays.
    /// </summary>
    public override string Decode(ReadOnlySpan<int> ids)
    {
        int total = 0;
        foreach (int id in ids)
        {
            total += MaxBytes(id);
        }
        byte[] rented = ArrayPool<byte>.Shared.Rent(Math.Max(total, 1));
        try
        {
            int n = 0;
            for (int i = 0; i < ids.Length; i++)
            {
                int written = TokenBytes(ids[i], rented.AsSpan(n));
                int skip = i == 0 && AddSpacePrefix && written > 0 && rented[n] == (byte)' ' ? 1 : 0;
                if (skip > 0) rented.AsSpan(n + 1, written - 1).CopyTo(rented.AsSpan(n));
                n += written - skip;
            }
            return Encoding.UTF8.GetString(rented, 0, n);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>What llama.cpp's <c>llama_token_to_piece</c> prints for a token (specials not rendered).</summary>
    private static byte[] Piece(string token, TokenType type) => type switch
    {
        TokenType.Normal => Encoding.UTF8.GetBytes(token.Replace(SpaceMark, ' ')),
        TokenType.UserDefined => Encoding.UTF8.GetBytes(token),
        TokenType.Byte => [(byte)ParseByte(token)],
        _ => [], // control, unknown, unused and undefined tokens print nothing
    };

    /// <summary>The byte a <c>&lt;0xXX&gt;</c> token stands for, or -1.</summary>
    private static int ParseByte(string token)
    {
        if (token.Length != 6 || !token.StartsWith("<0x", StringComparison.Ordinal) || token[5] != '>') return -1;
        return byte.TryParse(token.AsSpan(3, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out byte b) ? b : -1;
    }

    /// <summary>llama.cpp's spelling of a byte token: upper-case hex.</summary>
    private static void ByteSpelling(byte b, Span<char> destination)
    {
        const string hex = "0123456789ABCDEF";
        "<0x".CopyTo(destination);
        destination[3] = hex[b >> 4];
        destination[4] = hex[b & 15];
        destination[5] = '>';
    }

    private static float[] ReadScores(GgufFile file, int count)
    {
        GgufValue? value = file.Get(ScoresKey);
        if (value is null)
        {
            return new float[count]; // llama.cpp scores every token 0 then: merges go leftmost first
        }
        float[] scores = value.Value is int[] integers
            ? Array.ConvertAll(integers, i => (float)i)
            : value.AsArray<float>(ScoresKey);
        if (scores.Length != count)
        {
            throw new GgufFormatException($"metadata '{ScoresKey}' has {scores.Length} entries for {count} tokens");
        }
        for (int i = 0; i < scores.Length; i++)
        {
            if (float.IsNaN(scores[i]))
            {
                throw new GgufFormatException($"metadata '{ScoresKey}' entry {i} is not a number");
            }
        }
        return scores;
    }

    private static int? ReadTokenIdOr(GgufFile file, string key, int count, int fallback) =>
        file.Get(key) is null ? (fallback < count ? fallback : null) : ReadTokenId(file, key, count);

    /// <summary>Lone surrogates as U+FFFD, as UTF-8 encoding them (what llama.cpp receives) does.</summary>
    private static string WithoutLoneSurrogates(string text)
    {
        int bad = -1;
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            if (char.IsSurrogate(text[i])) { bad = i; break; }
        }
        return bad < 0 ? text : Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text));
    }

    private static string Printable(string token) => token.Length > 40 ? token[..40] + "..." : token;

    /// <summary>Buffers one thread reuses across calls, so that encoding allocates little beyond its result.</summary>
    private sealed class Scratch
    {
        private char[] _characters = new char[256];
        private int[] _start = new int[256], _length = new int[256], _previous = new int[256], _next = new int[256];

        public PriorityQueue<(int Left, int Right, int Length), (float Score, int Left)> Queue { get; } = new(ScoreOrder.Instance);

        public char[] Characters(int count)
        {
            if (_characters.Length < count) _characters = new char[Math.Max(count, 2 * _characters.Length)];
            return _characters;
        }

        public void Symbols(int count, out int[] start, out int[] length, out int[] previous, out int[] next)
        {
            if (_start.Length < count)
            {
                int size = Math.Max(count, 2 * _start.Length);
                (_start, _length, _previous, _next) = (new int[size], new int[size], new int[size], new int[size]);
            }
            (start, length, previous, next) = (_start, _length, _previous, _next);
        }
    }

    /// <summary>Highest score first; on a tie the leftmost pair (llama.cpp's <c>llm_bigram_spm</c> order).</summary>
    private sealed class ScoreOrder : IComparer<(float Score, int Left)>
    {
        public static readonly ScoreOrder Instance = new();

        public int Compare((float Score, int Left) x, (float Score, int Left) y)
        {
            int byScore = y.Score.CompareTo(x.Score);
            return byScore != 0 ? byScore : x.Left.CompareTo(y.Left);
        }
    }
}
