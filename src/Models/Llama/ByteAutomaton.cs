using System.Text;

namespace EdgeSlm.Models.Llama;

/// <summary>
/// A deterministic automaton over UTF-8 bytes: the language a <see cref="TokenConstraint"/> lets a decoder write.
/// Built from strings laid into tries (<see cref="AddPath"/>), whose last byte may lead to a shared state, so a
/// JSON object with many possible values per key stays small: every value of a key ends in the same state.
/// </summary>
public sealed class ByteAutomaton
{
    private readonly List<Dictionary<byte, int>> _next = [];
    private readonly List<bool> _accepting = [];

    public ByteAutomaton()
    {
        AddState();
    }

    /// <summary>The state nothing has been written in.</summary>
    public const int Start = 0;

    public int StateCount => _next.Count;

    public bool IsAccepting(int state) => _accepting[state];

    /// <summary>The state after <paramref name="b"/> from <paramref name="state"/>, or -1 when the byte is not allowed there.</summary>
    public int Next(int state, byte b) => _next[state].TryGetValue(b, out int next) ? next : -1;

    /// <summary>The single byte allowed in <paramref name="state"/> when there is exactly one and the state does not accept; otherwise -1.</summary>
    public int OnlyByte(int state)
    {
        Dictionary<byte, int> next = _next[state];
        if (next.Count != 1 || _accepting[state]) return -1;
        foreach (byte b in next.Keys) return b;
        return -1;
    }

    public int AddState(bool accepting = false)
    {
        _next.Add([]);
        _accepting.Add(accepting);
        return _next.Count - 1;
    }

    public void SetAccepting(int state) => _accepting[state] = true;

    /// <summary>
    /// Lays <paramref name="text"/>'s bytes from <paramref name="from"/>, reusing the transitions already there, and
    /// returns the state reached. With <paramref name="to"/>, the last byte leads to that state instead of a new one;
    /// an existing transition on that byte must already lead there (the automaton stays deterministic).
    /// </summary>
    public int AddPath(int from, string text, int to = -1)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        if (bytes.Length == 0)
        {
            if (to >= 0) throw new ArgumentException("An empty path cannot lead to another state.", nameof(text));
            return from;
        }
        int state = from;
        for (int i = 0; i < bytes.Length; i++)
        {
            bool last = i == bytes.Length - 1;
            if (_next[state].TryGetValue(bytes[i], out int next))
            {
                if (last && to >= 0 && next != to)
                {
                    throw new ArgumentException($"'{text}' would end in two states: the automaton would not be deterministic.", nameof(text));
                }
                state = next;
                continue;
            }
            next = last && to >= 0 ? to : AddState();
            _next[state][bytes[i]] = next;
            state = next;
        }
        return state;
    }

    /// <summary>Exactly the given non-empty strings.</summary>
    public static ByteAutomaton OneOf(IEnumerable<string> strings)
    {
        ArgumentNullException.ThrowIfNull(strings);
        var automaton = new ByteAutomaton();
        int count = 0;
        foreach (string text in strings)
        {
            if (string.IsNullOrEmpty(text))
            {
                throw new ArgumentException("An allowed string cannot be empty.", nameof(strings));
            }
            automaton.SetAccepting(automaton.AddPath(Start, text));
            count++;
        }
        if (count == 0)
        {
            throw new ArgumentException("At least one allowed string is needed.", nameof(strings));
        }
        return automaton;
    }

    /// <summary>Whether the automaton accepts <paramref name="text"/> whole.</summary>
    public bool Accepts(string text)
    {
        int state = Start;
        foreach (byte b in Encoding.UTF8.GetBytes(text))
        {
            state = Next(state, b);
            if (state < 0) return false;
        }
        return IsAccepting(state);
    }
}
