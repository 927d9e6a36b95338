using System.Buffers;
using System.Numerics.Tensors;
using EdgeSlm.Intents.Classifiers;

namespace EdgeSlm.Intents.Tagging;

/// <summary>
/// Finds slot spans in an utterance from the encoder's last-layer state of each word piece: a linear layer on the
/// standardised state, a few lexical features of the piece (<see cref="LexicalFeatures"/>) and its membership in
/// each slot's phrases (<see cref="SlotGazetteer"/>) gives each piece a
/// score per BIO tag, and a <see cref="LinearChainCrf"/> decodes the best tag path, restricted to the slots the
/// predicted intent had in training. The spans are read back as character ranges (<see cref="SlotTags.Spans"/>);
/// turning a span into a value is the <c>SlotExtractor</c>'s job. Immutable; scratch comes from the shared array
/// pools, so any number of threads may tag at once and tagging allocates nothing but the spans it adds.
/// </summary>
public sealed class SlotTagger
{
    /// <summary>
    /// Per piece, beside its state: glued to the piece before (inside a word), glued to the piece after, holds a
    /// digit, first piece, last piece, starts with a capital letter.
    /// </summary>
    public const int LexicalFeatures = 6;

    private readonly float[] _mean;         // (hidden) of the training pieces' states
    private readonly float[] _inverseScale; // (hidden) 1 / standard deviation
    private readonly float[] _weights;      // (tags, hidden + lexical)
    private readonly float[] _bias;         // (tags)
    private readonly float[] _transitions;  // (tags, tags) from, to
    private readonly float[] _start;        // (tags)
    private readonly float[] _end;          // (tags)
    private readonly Dictionary<string, bool[]> _intentTags; // intent → (tags) the tags of its slots, and O

    internal SlotTagger(SlotTags tags, int hidden, float[] mean, float[] inverseScale, float[] weights, float[] bias, float[] transitions, float[] start, float[] end,
        IReadOnlyDictionary<string, int[]> intentSlots, SlotGazetteer gazetteer)
    {
        int k = tags.Count, d = FeatureCountOf(hidden, tags.Slots.Count);
        if (mean.Length != hidden || inverseScale.Length != hidden || weights.Length != k * d || bias.Length != k || transitions.Length != k * k || start.Length != k || end.Length != k)
        {
            throw new ArgumentException($"a tagger of {k} tags on {hidden} states has parameters of other sizes");
        }
        (Tags, Hidden, _mean, _inverseScale, _weights, _bias, _transitions, _start, _end) = (tags, hidden, mean, inverseScale, weights, bias, transitions, start, end);
        Gazetteer = gazetteer;
        if (gazetteer.Phrases.Values.Any(slots => slots.Any(slot => (uint)slot >= (uint)tags.Slots.Count)))
        {
            throw new ArgumentException($"a phrase names a slot beyond the {tags.Slots.Count} of the tagger");
        }
        IntentSlots = intentSlots.ToDictionary(p => p.Key, p => p.Value, StringComparer.Ordinal);
        _intentTags = new Dictionary<string, bool[]>(StringComparer.Ordinal);
        foreach ((string intent, int[] slots) in IntentSlots)
        {
            var allowed = new bool[k];
            allowed[SlotTags.Outside] = true;
            foreach (int slot in slots)
            {
                if ((uint)slot >= (uint)tags.Slots.Count) throw new ArgumentException($"intent {intent} names slot {slot} of {tags.Slots.Count}");
                allowed[SlotTags.Begin(slot)] = allowed[SlotTags.Inside(slot)] = true;
            }
            _intentTags[intent] = allowed;
        }
    }

    public SlotTags Tags { get; }
    public int Hidden { get; }
    public int FeatureCount => FeatureCountOf(Hidden, Tags.Slots.Count);
    public SlotGazetteer Gazetteer { get; }

    /// <summary>Features per piece: the state, the lexical features, one gazetteer feature per slot.</summary>
    internal static int FeatureCountOf(int hidden, int slots) => hidden + LexicalFeatures + slots;
    /// <summary>The slots each intent had in training (indices into <see cref="SlotTags.Slots"/>).</summary>
    public IReadOnlyDictionary<string, int[]> IntentSlots { get; }

    internal ReadOnlySpan<float> Weights => _weights;
    internal ReadOnlySpan<float> Bias => _bias;
    internal ReadOnlySpan<float> Transitions => _transitions;
    internal ReadOnlySpan<float> Start => _start;
    internal ReadOnlySpan<float> End => _end;

    /// <summary>Whether the tagger knows the slot (saw it in training).</summary>
    public bool Knows(string slot) => Tags.Index.ContainsKey(slot);

    /// <summary>
    /// Adds the spans of <paramref name="intent"/>'s slots in <paramref name="text"/> to <paramref name="spans"/>,
    /// from its pieces' <paramref name="states"/> ((pieces, hidden), [CLS] first and [SEP] last) and their ranges.
    /// An intent the tagger never saw with slots gets none.
    /// </summary>
    public void Tag(string text, string intent, ReadOnlySpan<float> states, ReadOnlySpan<int> starts, ReadOnlySpan<int> ends, List<TaggedSpan> spans)
    {
        if (!_intentTags.TryGetValue(intent, out bool[]? allowed))
        {
            return;
        }
        int steps = starts.Length - 2;
        if (steps <= 0) return;
        int k = Tags.Count, d = FeatureCount;
        float[] x = ArrayPool<float>.Shared.Rent(steps * d);
        float[] emissions = ArrayPool<float>.Shared.Rent(steps * k);
        int[] path = ArrayPool<int>.Shared.Rent(steps);
        try
        {
            Features(text, states, starts, ends, x.AsSpan(0, steps * d));
            Emissions(x.AsSpan(0, steps * d), steps, emissions.AsSpan(0, steps * k));
            LinearChainCrf.Decode(emissions.AsSpan(0, steps * k), _transitions, _start, _end, allowed, path.AsSpan(0, steps));
            Tags.Spans(text, path.AsSpan(0, steps), starts.Slice(1, steps), ends.Slice(1, steps), spans);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(x);
            ArrayPool<float>.Shared.Return(emissions);
            ArrayPool<int>.Shared.Return(path);
        }
    }

    /// <summary>(steps, tags) scores of each piece's tags from its (steps, features) rows.</summary>
    internal void Emissions(ReadOnlySpan<float> x, int steps, Span<float> emissions) => Emissions(_weights, _bias, FeatureCount, Tags.Count, x, steps, emissions);

    internal static void Emissions(ReadOnlySpan<float> weights, ReadOnlySpan<float> bias, int d, int k, ReadOnlySpan<float> x, int steps, Span<float> emissions)
    {
        for (int t = 0; t < steps; t++)
        {
            ReadOnlySpan<float> row = x.Slice(t * d, d);
            for (int j = 0; j < k; j++)
            {
                emissions[t * k + j] = bias[j] + TensorPrimitives.Dot(weights.Slice(j * d, d), row);
            }
        }
    }

    /// <summary>(pieces − 2, features) rows of the pieces between [CLS] and [SEP]: the standardised state, then the lexical features.</summary>
    internal void Features(string text, ReadOnlySpan<float> states, ReadOnlySpan<int> starts, ReadOnlySpan<int> ends, Span<float> x) =>
        Features(text, states, starts, ends, Hidden, _mean, _inverseScale, Gazetteer, Tags.Slots.Count, x);

    internal static void Features(string text, ReadOnlySpan<float> states, ReadOnlySpan<int> starts, ReadOnlySpan<int> ends, int hidden,
        ReadOnlySpan<float> mean, ReadOnlySpan<float> inverseScale, SlotGazetteer gazetteer, int slots, Span<float> x)
    {
        int steps = starts.Length - 2, d = FeatureCountOf(hidden, slots);
        for (int t = 0; t < steps; t++)
        {
            int piece = t + 1;
            Span<float> row = x.Slice(t * d, d);
            Span<float> state = row[..hidden];
            TensorPrimitives.Subtract(states.Slice(piece * hidden, hidden), mean, state);
            TensorPrimitives.Multiply(state, inverseScale, state);
            Span<float> lexical = row[hidden..];
            int start = starts[piece], end = ends[piece];
            lexical[0] = t > 0 && start == ends[piece - 1] && end > start ? 1 : 0;
            lexical[1] = t < steps - 1 && starts[piece + 1] == end && end > start ? 1 : 0;
            lexical[2] = text.AsSpan(start, end - start).IndexOfAnyInRange('0', '9') >= 0 ? 1 : 0;
            lexical[3] = t == 0 ? 1 : 0;
            lexical[4] = t == steps - 1 ? 1 : 0;
            lexical[5] = end > start && char.IsUpper(text[start]) ? 1 : 0;
            row[(hidden + LexicalFeatures)..].Clear();
        }
        gazetteer.Mark(text, starts.Slice(1, steps), ends.Slice(1, steps), x, d, hidden + LexicalFeatures);
    }

    private static ReadOnlySpan<byte> Magic => "EDGESLOT"u8;
    private const uint FormatVersion = 1;
    private const int MaxSlots = 4096;
    private const int MaxIntents = 1 << 16;
    private const int MaxPhrases = 1 << 20;
    private const int MaxHidden = 1 << 14;
    private const int MaxNameBytes = 1024;
    private const long MaxFloats = 1 << 26;

    /// <summary>
    /// Writes the tagger: "EDGESLOT", version, slot count, hidden size, the slot names, the intents (name, slot
    /// count, slot indices), the gazetteer's phrases (phrase, slot count, slot indices), then mean, inverse scale, weights, bias, transitions, start and end as float32, and
    /// a SHA-256 of all of it.
    /// </summary>
    public void Write(Stream stream)
    {
        using var buffer = new MemoryStream();
        buffer.Write(Magic);
        ChecksummedReader.WriteUInt32(buffer, FormatVersion);
        ChecksummedReader.WriteUInt32(buffer, (uint)Tags.Slots.Count);
        ChecksummedReader.WriteUInt32(buffer, (uint)Hidden);
        foreach (string slot in Tags.Slots)
        {
            ChecksummedReader.WriteName(buffer, slot, MaxNameBytes, "slot tagger file");
        }
        ChecksummedReader.WriteUInt32(buffer, (uint)IntentSlots.Count);
        foreach ((string intent, int[] slots) in IntentSlots.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            ChecksummedReader.WriteName(buffer, intent, MaxNameBytes, "slot tagger file");
            ChecksummedReader.WriteUInt32(buffer, (uint)slots.Length);
            foreach (int slot in slots) ChecksummedReader.WriteUInt32(buffer, (uint)slot);
        }
        ChecksummedReader.WriteUInt32(buffer, (uint)Gazetteer.Phrases.Count);
        foreach ((string phrase, int[] slots) in Gazetteer.Phrases.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            ChecksummedReader.WriteName(buffer, phrase, MaxNameBytes, "slot tagger file");
            ChecksummedReader.WriteUInt32(buffer, (uint)slots.Length);
            foreach (int slot in slots) ChecksummedReader.WriteUInt32(buffer, (uint)slot);
        }
        foreach (float[] values in (float[][])[_mean, _inverseScale, _weights, _bias, _transitions, _start, _end])
        {
            ChecksummedReader.WriteFloats(buffer, values);
        }
        ChecksummedReader.WriteWithChecksum(buffer, stream);
    }

    /// <summary>Reads a tagger written by <see cref="Write"/>.</summary>
    /// <exception cref="InvalidDataException">The stream does not hold a valid tagger; the message says what is wrong.</exception>
    public static SlotTagger Read(Stream stream)
    {
        const string kind = "slot tagger file";
        using var reader = new ChecksummedReader(stream, kind);
        reader.Header(Magic, FormatVersion);
        uint slotCount = reader.UInt32("slot count");
        uint hidden = reader.UInt32("hidden size");
        if (slotCount is 0 or > MaxSlots || hidden is 0 or > MaxHidden)
        {
            throw new InvalidDataException($"{kind} has {slotCount} slots on states of {hidden}; 1 to {MaxSlots} slots on 1 to {MaxHidden} are allowed");
        }
        long k = 1 + 2 * slotCount, d = FeatureCountOf((int)hidden, (int)slotCount);
        long floats = 2 * hidden + k * d + k + k * k + 2 * k;
        if (floats > MaxFloats || (stream.CanSeek && stream.Length - stream.Position < floats * sizeof(float)))
        {
            throw new InvalidDataException($"{kind}: {slotCount} slots on states of {hidden} need {floats * sizeof(float)} bytes of parameters, more than {(floats > MaxFloats ? "a tagger file may hold" : "the file has left")}");
        }
        string[] slots = reader.DistinctNames((int)slotCount, MaxNameBytes, "slot");
        uint intentCount = reader.UInt32("intent count");
        if (intentCount > MaxIntents)
        {
            throw new InvalidDataException($"{kind} has {intentCount} intents; at most {MaxIntents} are allowed");
        }
        var intentSlots = new Dictionary<string, int[]>(StringComparer.Ordinal);
        for (int i = 0; i < intentCount; i++)
        {
            string intent = reader.Name(MaxNameBytes, $"intent {i}");
            uint count = reader.UInt32($"slot count of intent {intent}");
            if (count > slotCount)
            {
                throw new InvalidDataException($"{kind}: intent {intent} has {count} slots, more than the {slotCount} the tagger knows");
            }
            var indices = new int[count];
            for (int s = 0; s < count; s++)
            {
                uint index = reader.UInt32($"slot {s} of intent {intent}");
                if (index >= slotCount) throw new InvalidDataException($"{kind}: intent {intent} names slot {index}, but there are {slotCount}");
                indices[s] = (int)index;
            }
            if (!intentSlots.TryAdd(intent, indices)) throw new InvalidDataException($"{kind}: intent '{intent}' appears twice");
        }
        uint phraseCount = reader.UInt32("phrase count");
        if (phraseCount > MaxPhrases)
        {
            throw new InvalidDataException($"{kind} has {phraseCount} phrases; at most {MaxPhrases} are allowed");
        }
        var phrases = new Dictionary<string, int[]>(StringComparer.Ordinal);
        for (int i = 0; i < phraseCount; i++)
        {
            string phrase = reader.Name(MaxNameBytes, $"phrase {i}");
            uint count = reader.UInt32($"slot count of phrase {i}");
            if (count is 0 || count > slotCount)
            {
                throw new InvalidDataException($"{kind}: phrase {i} has {count} slots; 1 to the {slotCount} the tagger knows are allowed");
            }
            var indices = new int[count];
            for (int s = 0; s < count; s++)
            {
                uint index = reader.UInt32($"slot {s} of phrase {i}");
                if (index >= slotCount) throw new InvalidDataException($"{kind}: phrase {i} names slot {index}, but there are {slotCount}");
                indices[s] = (int)index;
            }
            if (!phrases.TryAdd(phrase, indices)) throw new InvalidDataException($"{kind}: phrase {i} appears twice");
        }
        float[] mean = reader.Floats((int)hidden, "mean");
        float[] inverseScale = reader.Floats((int)hidden, "inverse scale");
        float[] weights = reader.Floats((int)(k * d), "weights");
        float[] bias = reader.Floats((int)k, "bias");
        float[] transitions = reader.Floats((int)(k * k), "transitions");
        float[] start = reader.Floats((int)k, "start scores");
        float[] end = reader.Floats((int)k, "end scores");
        reader.VerifyChecksum();
        foreach ((float[] values, string what) in (ReadOnlySpan<(float[], string)>)[(mean, "mean"), (inverseScale, "inverse scale"), (weights, "weight"), (bias, "bias"), (transitions, "transition"), (start, "start score"), (end, "end score")])
        {
            if (Array.FindIndex(values, v => !float.IsFinite(v)) >= 0) throw new InvalidDataException($"{kind} holds a non-finite {what}");
        }
        return new SlotTagger(new SlotTags(slots), (int)hidden, mean, inverseScale, weights, bias, transitions, start, end, intentSlots, new SlotGazetteer(phrases));
    }
}
