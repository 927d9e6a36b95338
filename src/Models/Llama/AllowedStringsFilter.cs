using System.Text;
using EdgeSlm.Models.Tokenizers;

namespace EdgeSlm.Models.Llama;

/// <summary>
/// Constrained decoding to one of a set of strings (intent names, slot values ...): before each draw,
/// <see cref="Apply"/> leaves only the tokens whose bytes continue the text generated so far along a trie of the
/// allowed strings' UTF-8 bytes, and allows end of generation only where an allowed string is complete;
/// <see cref="Accept"/> moves along the trie. Control tokens other than the end of generation are never allowed.
/// </summary>
public sealed class AllowedStringsFilter
{
    private readonly DecoderTokenizer _tokenizer;
    private readonly List<Dictionary<byte, int>> _children = [];
    private readonly List<bool> _terminal = [];
    private readonly byte[] _tokenBytes;     // every token's bytes, one after another
    private readonly int[] _tokenOffsets;    // (vocab_size + 1) where each token's bytes start
    private int _node;

    public AllowedStringsFilter(DecoderTokenizer tokenizer, IEnumerable<string> allowed)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentNullException.ThrowIfNull(allowed);
        _tokenizer = tokenizer;
        NewNode();
        int count = 0;
        foreach (string text in allowed)
        {
            if (string.IsNullOrEmpty(text))
            {
                throw new ArgumentException("An allowed string cannot be empty.", nameof(allowed));
            }
            int node = 0;
            foreach (byte b in Encoding.UTF8.GetBytes(text))
            {
                if (!_children[node].TryGetValue(b, out int child))
                {
                    child = NewNode();
                    _children[node][b] = child;
                }
                node = child;
            }
            _terminal[node] = true;
            count++;
        }
        if (count == 0)
        {
            throw new ArgumentException("At least one allowed string is needed.", nameof(allowed));
        }
        _tokenOffsets = new int[tokenizer.VocabularySize + 1];
        var bytes = new List<byte>();
        var buffer = new byte[256];
        for (int id = 0; id < tokenizer.VocabularySize; id++)
        {
            _tokenOffsets[id] = bytes.Count;
            if (tokenizer.IsControl(id)) continue;
            int max = tokenizer.MaxBytes(id);
            if (max > buffer.Length) buffer = new byte[max];
            bytes.AddRange(buffer.AsSpan(0, tokenizer.TokenBytes(id, buffer)));
        }
        _tokenOffsets[^1] = bytes.Count;
        _tokenBytes = bytes.ToArray();
    }

    /// <summary>Whether the text so far is one of the allowed strings (it may still continue into a longer one).</summary>
    public bool IsComplete => _terminal[_node];

    /// <summary>Back to the start: nothing generated yet.</summary>
    public void Reset() => _node = 0;

    /// <summary>Sets the logits of every token that cannot come next to −∞.</summary>
    public void Apply(Span<float> logits)
    {
        if (logits.Length != _tokenOffsets.Length - 1)
        {
            throw new ArgumentException($"{_tokenOffsets.Length - 1} logits expected, not {logits.Length}.", nameof(logits));
        }
        Dictionary<byte, int> here = _children[_node];
        for (int id = 0; id < logits.Length; id++)
        {
            int start = _tokenOffsets[id], end = _tokenOffsets[id + 1];
            bool allowed;
            if (start == end)
            {
                allowed = _terminal[_node] && _tokenizer.IsEndOfGeneration(id);
            }
            else if (!here.TryGetValue(_tokenBytes[start], out int node))
            {
                allowed = false;
            }
            else
            {
                allowed = true;
                for (int i = start + 1; i < end; i++)
                {
                    if (!_children[node].TryGetValue(_tokenBytes[i], out node))
                    {
                        allowed = false;
                        break;
                    }
                }
            }
            if (!allowed)
            {
                logits[id] = float.NegativeInfinity;
            }
        }
    }

    /// <summary>Moves past <paramref name="token"/>, which <see cref="Apply"/> allowed.</summary>
    public void Accept(int token)
    {
        if ((uint)token >= (uint)(_tokenOffsets.Length - 1))
        {
            throw new ArgumentOutOfRangeException(nameof(token), token, "not a token id of the vocabulary");
        }
        if (_tokenizer.IsEndOfGeneration(token))
        {
            return;
        }
        int node = _node;
        for (int i = _tokenOffsets[token]; i < _tokenOffsets[token + 1]; i++)
        {
            if (!_children[node].TryGetValue(_tokenBytes[i], out node))
            {
                throw new InvalidOperationException($"token {token} does not continue any allowed string");
            }
        }
        _node = node;
    }

    private int NewNode()
    {
        _children.Add([]);
        _terminal.Add(false);
        return _children.Count - 1;
    }
}
