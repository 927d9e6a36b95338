namespace EdgeSlm.Intents.Features;

/// <summary>
/// The first encoder's last-layer state of every word piece of a batch of sentences, with where each piece came
/// from in its sentence, as <see cref="SentenceFeatures.Embed(IReadOnlyList{string}, Span{float}, Span{bool}, TokenStates?)"/>
/// fills it beside the sentence features (a copy the forward pass makes anyway, no second pass). Sentence s owns
/// pieces <c>SentenceStart(s)</c> to <c>SentenceStart(s + 1)</c>, [CLS] first and [SEP] last. The buffers grow to the
/// largest batch seen and are reused, so an instance kept per inference thread allocates nothing per utterance.
/// </summary>
public sealed class TokenStates
{
    private float[] _states = [];   // (pieces, hidden)
    private int[] _starts = [];     // (pieces) UTF-16 start of each piece in its sentence
    private int[] _ends = [];       // (pieces) end, exclusive
    private int[] _sentences = [0]; // (sentences + 1) first piece of each sentence, then the total

    public int Hidden { get; private set; }
    public int SentenceCount { get; private set; }
    public int PieceCount => _sentences[SentenceCount];

    public int SentenceStart(int sentence) => _sentences[sentence];
    public int PiecesOf(int sentence) => _sentences[sentence + 1] - _sentences[sentence];

    /// <summary>(pieces, hidden) states of one sentence's pieces, [CLS] and [SEP] included.</summary>
    public ReadOnlySpan<float> States(int sentence) => _states.AsSpan(_sentences[sentence] * Hidden, PiecesOf(sentence) * Hidden);
    public ReadOnlySpan<int> Starts(int sentence) => _starts.AsSpan(_sentences[sentence], PiecesOf(sentence));
    public ReadOnlySpan<int> Ends(int sentence) => _ends.AsSpan(_sentences[sentence], PiecesOf(sentence));

    internal void Reset(int hidden, int sentences)
    {
        Hidden = hidden;
        SentenceCount = 0;
        if (_sentences.Length < sentences + 1)
        {
            _sentences = new int[sentences + 1];
        }
        _sentences[0] = 0;
    }

    /// <summary>Room for one more sentence of <paramref name="pieces"/> pieces; returns where its pieces start.</summary>
    internal int Add(int pieces)
    {
        int start = _sentences[SentenceCount];
        int end = start + pieces;
        if (_starts.Length < end)
        {
            int capacity = Math.Max(end, Math.Max(64, _starts.Length * 2));
            Array.Resize(ref _starts, capacity);
            Array.Resize(ref _ends, capacity);
            Array.Resize(ref _states, capacity * Hidden);
        }
        if (_sentences.Length < SentenceCount + 2)
        {
            Array.Resize(ref _sentences, Math.Max(SentenceCount + 2, _sentences.Length * 2));
        }
        SentenceCount++;
        _sentences[SentenceCount] = end;
        return start;
    }

    internal Span<float> StatesFrom(int piece, int pieces) => _states.AsSpan(piece * Hidden, pieces * Hidden);
    internal Span<int> StartsFrom(int piece, int pieces) => _starts.AsSpan(piece, pieces);
    internal Span<int> EndsFrom(int piece, int pieces) => _ends.AsSpan(piece, pieces);
}
