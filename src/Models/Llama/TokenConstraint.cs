using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Models.Llama;

/// <summary>
/// Constrained decoding: before each draw, <see cref="Apply"/> leaves only the tokens whose bytes keep the text
/// generated so far inside a <see cref="ByteAutomaton"/>'s language (one of a set of strings, a JSON object ...),
/// and allows the end of generation only in an accepting state; <see cref="Accept"/> moves past the drawn token.
/// Control tokens other than the end of generation are never allowed. Anything outside the language cannot be
/// produced, whatever the model's logits say.
/// </summary>
public sealed class TokenConstraint
{
    private readonly DecoderTokenizer _tokenizer;
    private readonly ByteAutomaton _automaton;
    private readonly TokenByteTable _table;
    private readonly bool[] _allowed;
    private int _state;

    public TokenConstraint(DecoderTokenizer tokenizer, ByteAutomaton automaton)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(automaton);
        _tokenizer = tokenizer;
        _automaton = automaton;
        _table = TokenByteTable.For(tokenizer);
        _allowed = new bool[tokenizer.VocabularySize];
    }

    /// <summary>Decoding to exactly one of <paramref name="allowed"/> (intent names, slot values ...).</summary>
    public TokenConstraint(DecoderTokenizer tokenizer, IEnumerable<string> allowed) : this(tokenizer, ByteAutomaton.OneOf(allowed))
    {
    }

    /// <summary>Whether the text so far is in the language (it may still continue into a longer text).</summary>
    public bool IsComplete => _automaton.IsAccepting(_state);

    /// <summary>Back to the start: nothing generated yet.</summary>
    public void Reset() => _state = ByteAutomaton.Start;

    /// <summary>Sets the logits of every token that cannot come next to −∞.</summary>
    public void Apply(Span<float> logits)
    {
        TokenByteTable table = _table;
        if (logits.Length != table.Offsets.Length - 1)
        {
            throw new ArgumentException($"{table.Offsets.Length - 1} logits expected, not {logits.Length}.", nameof(logits));
        }
        // Only tokens whose first byte leaves this state can be allowed: most of the vocabulary is never walked.
        Array.Clear(_allowed);
        for (int first = 0; first < 256; first++)
        {
            int after = _automaton.Next(_state, (byte)first);
            if (after < 0) continue;
            foreach (int id in table.ByFirstByte[first])
            {
                int state = after;
                for (int i = table.Offsets[id] + 1; i < table.Offsets[id + 1] && state >= 0; i++)
                {
                    state = _automaton.Next(state, table.Bytes[i]);
                }
                _allowed[id] = state >= 0;
            }
        }
        if (_automaton.IsAccepting(_state))
        {
            foreach (int id in table.Empty)
            {
                _allowed[id] = _tokenizer.IsEndOfGeneration(id);
            }
        }
        for (int id = 0; id < logits.Length; id++)
        {
            if (!_allowed[id]) logits[id] = float.NegativeInfinity;
        }
    }

    /// <summary>Moves past <paramref name="token"/>, which <see cref="Apply"/> allowed.</summary>
    public void Accept(int token)
    {
        if ((uint)token >= (uint)(_table.Offsets.Length - 1))
        {
            throw new ArgumentOutOfRangeException(nameof(token), token, "not a token id of the vocabulary");
        }
        if (_tokenizer.IsEndOfGeneration(token))
        {
            if (!IsComplete) throw new InvalidOperationException("the end of generation is not allowed before the text is complete");
            return;
        }
        int state = _state;
        for (int i = _table.Offsets[token]; i < _table.Offsets[token + 1]; i++)
        {
            state = _automaton.Next(state, _table.Bytes[i]);
            if (state < 0)
            {
                throw new InvalidOperationException($"token {token} leaves the constraint's language");
            }
        }
        _state = state;
    }

    /// <summary>
    /// The text the language forces from here (every state on the way has one way out and none accepts): the
    /// caller may append it in one batch instead of drawing it token by token. Empty when the model has a choice.
    /// </summary>
    public string ForcedText()
    {
        var bytes = new List<byte>();
        int state = _state;
        int b;
        while ((b = _automaton.OnlyByte(state)) >= 0)
        {
            bytes.Add((byte)b);
            state = _automaton.Next(state, (byte)b);
        }
        // Up to the last complete UTF-8 character: the rest is decided by the model's next draw.
        var strict = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true);
        for (int end = bytes.Count; end >= 0 && end >= bytes.Count - 3; end--)
        {
            try
            {
                return strict.GetString(bytes.ToArray(), 0, end);
            }
            catch (System.Text.DecoderFallbackException)
            {
            }
        }
        return "";
    }
}

/// <summary>Every token's bytes, laid out once per tokenizer and shared by all constraints on it.</summary>
internal sealed class TokenByteTable
{
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<DecoderTokenizer, TokenByteTable> Tables = new();

    private TokenByteTable(DecoderTokenizer tokenizer)
    {
        Offsets = new int[tokenizer.VocabularySize + 1];
        var bytes = new List<byte>();
        var buffer = new byte[256];
        var byFirst = new List<int>[256];
        for (int b = 0; b < 256; b++) byFirst[b] = [];
        var empty = new List<int>();
        for (int id = 0; id < tokenizer.VocabularySize; id++)
        {
            Offsets[id] = bytes.Count;
            int length = 0;
            if (!tokenizer.IsControl(id))
            {
                int max = tokenizer.MaxBytes(id);
                if (max > buffer.Length) buffer = new byte[max];
                length = tokenizer.TokenBytes(id, buffer);
                bytes.AddRange(buffer.AsSpan(0, length));
            }
            if (length == 0) empty.Add(id);
            else byFirst[buffer[0]].Add(id);
        }
        Offsets[^1] = bytes.Count;
        Bytes = bytes.ToArray();
        ByFirstByte = byFirst.Select(l => l.ToArray()).ToArray();
        Empty = empty.ToArray();
    }

    /// <summary>Every token's bytes, one after another.</summary>
    public byte[] Bytes { get; }

    /// <summary>(vocab_size + 1) where each token's bytes start.</summary>
    public int[] Offsets { get; }

    /// <summary>The tokens starting with each byte.</summary>
    public int[][] ByFirstByte { get; }

    /// <summary>Tokens that write nothing (control tokens, the end of generation).</summary>
    public int[] Empty { get; }

    public static TokenByteTable For(DecoderTokenizer tokenizer) => Tables.GetValue(tokenizer, t => new TokenByteTable(t));
}
